"""End to end on a real cluster (kind or k3d): opt in with ``--with-e2e``.

The operator runs in this process against the current kubeconfig context; Redis is a
private server on this machine (the operator samples it from here; no worker pod needs
to run, so no image has to be loaded into the cluster). What only a real API server can
show: the generated CRD is accepted (structural schema, CEL rules, defaults), invalid
JobQueues are refused at admission, and the Deployment is garbage-collected through its
owner reference.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from redis.asyncio import Redis
from support.kube_emulator import eventually

from jobqueue.operator.controller import run_operator
from jobqueue.operator.crd import CRD_NAME, crd_yaml
from jobqueue.operator.scaler import OperatorContext
from jobqueue.operator.settings import OperatorSettings

pytestmark = pytest.mark.e2e


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A namespace on the current cluster, with the CRD applied; skipped without one."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    probe = subprocess.run(["kubectl", "version", "-o", "json"], capture_output=True, timeout=30)
    if probe.returncode != 0 or b"serverVersion" not in probe.stdout:
        pytest.skip("no reachable Kubernetes cluster in the current kubeconfig (kind/k3d)")
    kubectl("apply", "-f", "-", stdin=crd_yaml())
    kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    namespace = f"jobqueue-e2e-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    yield namespace
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def running_operator(cluster: str) -> Iterator[OperatorContext]:
    ctx = OperatorContext(settings=OperatorSettings(namespaces=(cluster,), standalone=True))
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(run_operator(ctx, stop_flag=stop, ready_flag=ready)),
        daemon=True,
    )
    thread.start()
    assert ready.wait(60), "operator did not start"
    yield ctx
    stop.set()
    thread.join(60)


def manifest(name: str, namespace: str, redis_url: str, **scaling: Any) -> str:
    body = {
        "apiVersion": "jobqueue.dev/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "redis": {"url": redis_url},
            "stream": f"{name}:work",
            "deadLetterStream": f"{name}:dead",
            "worker": {"image": "jobqueue:dev", "app": "jobqueue.worker.testing:app"},
            "scaling": {"pollIntervalSeconds": 0.5, "lagPerReplica": 10, **scaling},
        },
    }
    return yaml.safe_dump(body)


def test_the_api_server_refuses_an_invalid_jobqueue(cluster: str, redis_url: str) -> None:
    text = manifest("bad", cluster, redis_url, minReplicas=3, maxReplicas=1)
    out = kubectl("apply", "-f", "-", stdin=text, check=False)
    assert "minReplicas must be <= maxReplicas" in out


def test_the_api_server_fills_in_defaults(cluster: str, redis_url: str) -> None:
    kubectl("apply", "-f", "-", stdin=manifest("defaults", cluster, redis_url))
    spec = json.loads(kubectl("get", "jq", "defaults", "-n", cluster, "-o", "json"))["spec"]
    assert (spec["group"], spec["retentionPolicy"]) == ("workers", "Retain")
    assert spec["retry"]["backoff"]["capSeconds"] == 300
    kubectl("delete", "jq", "defaults", "-n", cluster)


async def test_a_jobqueue_gets_a_deployment_that_scales_on_a_burst(
    cluster: str, running_operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    kubectl("apply", "-f", "-", stdin=manifest("burst", cluster, redis_url))

    def replicas() -> int | None:
        out = kubectl("get", "deploy", "burst-worker", "-n", cluster, "-o", "json", check=False)
        return json.loads(out)["spec"]["replicas"] if out.startswith("{") else None

    await eventually(lambda: replicas() == 0, timeout_s=60, what="deployment at 0")
    for i in range(25):
        await redis_client.xadd("burst:work", {"type": "noop", "payload": "{}", "id": str(i)})
    await eventually(lambda: replicas() == 3, timeout_s=30, what="3 replicas")
    printed = kubectl("get", "jq", "burst", "-n", cluster)
    assert "LAG" in printed
    assert "DESIRED" in printed
    kubectl("delete", "jq", "burst", "-n", cluster)
    await eventually(lambda: replicas() is None, timeout_s=60, what="deployment deleted")
