"""End to end on kind/k3d: helm install, the sample JobQueue, autoscaling, a pod killed mid-job.

Opt-in: ``--with-e2e`` plus a cluster and an image (see conftest.py); skipped otherwise.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from e2e.cluster import (
    apply,
    deployment_replicas,
    kubectl_json,
    port_forward,
    run,
    wait_until,
)
from e2e.conftest import Install

from jobqueue.core.client import Client, NewJob

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = yaml.safe_load((ROOT / "manifests" / "samples" / "jobqueue.yaml").read_text())
SLEEP_JOBS = 40
SLEEP_MS = 3000


def sample(install: Install, **changes: Any) -> dict[str, Any]:
    """The sample JobQueue running the image under test, with ``changes`` merged into spec."""
    queue: dict[str, Any] = copy.deepcopy(SAMPLE)
    queue["metadata"]["namespace"] = install.namespace
    queue["spec"]["worker"]["image"] = install.image
    for key, value in changes.items():
        if isinstance(value, dict):
            queue["spec"].setdefault(key, {}).update(value)
        else:
            queue["spec"][key] = value
    return queue


def all_succeeded(client: Client, ids: list[str]) -> bool:
    """Whether every job's status record says it succeeded."""
    infos = [client.get(job_id) for job_id in ids]
    return all(info is not None and info.state == "succeeded" for info in infos)


@pytest.fixture
def redis_forward(installed: Install) -> Iterator[redis.Redis]:
    with port_forward(installed.namespace, "svc/redis", 6379) as port:
        client = redis.Redis(port=port, decode_responses=True)
        yield client
        client.close()


def test_the_operator_runs_restricted_and_ready(installed: Install) -> None:
    name = f"{installed.release}-jobqueue-operator"
    assert wait_until(
        lambda: (deployment_replicas(installed.namespace, name, "statefulset") or (0, 0))[1] >= 2,
        180,
        "two ready operator replicas",
    )
    pods = kubectl_json(
        "-n", installed.namespace, "get", "pods", "-l", "app.kubernetes.io/component=operator"
    )
    for pod in pods["items"]:
        # the namespace enforces "restricted": a pod that broke it would not exist at all
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # one replica acts, the other stands by: their peering priorities (pod indexes) differ
    peering = kubectl_json("get", "clusterkopfpeering", name)
    priorities = sorted(peer["priority"] for peer in peering.get("status", {}).values())
    assert priorities == [0, 1]


def _post_job(port: int, token: str | None, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/jobs",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_the_sample_queue_serves_jobs_posted_to_the_producer(
    installed: Install, redis_forward: redis.Redis
) -> None:
    # given the sample JobQueue (demo app) applied next to the chart
    apply(sample(installed))
    wait_until(lambda: deployment_replicas(installed.namespace, "demo-worker"), 120, "demo-worker")
    body = {"type": "email", "payload": {"to": "e2e@example.com", "template": "welcome"}}
    with port_forward(installed.namespace, installed.producer_service, 8080) as port:
        # when a client without the token posts, it is refused; with it, accepted
        assert _post_job(port, None, body)[0] == 401
        accepted = [_post_job(port, installed.token, body) for _ in range(20)]
    assert {status for status, _ in accepted} == {202}
    # then every job succeeds, run by workers the operator started from zero
    ids = [answer["jobId"] for _, answer in accepted]
    port = redis_forward.connection_pool.connection_kwargs["port"]
    with Client.from_url(f"redis://127.0.0.1:{port}/0", stream="jobs:work") as client:
        wait_until(lambda: all_succeeded(client, ids), 300, "the sample's jobs to succeed")
    # and `kubectl get jq` has status with conditions and the observed generation
    status = kubectl_json("-n", installed.namespace, "get", "jq", "demo")["status"]
    assert status["observedGeneration"] >= 1
    assert status["conditions"]


def test_helm_test_enqueues_a_job_and_sees_it_succeed(installed: Install) -> None:
    apply(sample(installed))
    run("helm", "test", installed.release, "--namespace", installed.namespace, "--timeout", "5m")


def _busy_worker_pod(client: redis.Redis, stream: str) -> str | None:
    """A worker pod (its consumer name is the pod name) holding jobs right now."""
    consumers = client.xinfo_consumers(stream, "workers")
    busy = [c["name"] for c in consumers if int(c["pending"]) > 0]
    return busy[0] if busy else None


def test_replicas_rise_and_fall_and_a_pod_killed_mid_job_loses_nothing(
    installed: Install, redis_forward: redis.Redis
) -> None:
    # given a queue of slow jobs (the testing app's `sleep`), short timeouts to reclaim fast
    queue = sample(
        installed,
        stream="e2e:work",
        deadLetterStream="e2e:dead",
        visibilityTimeoutSeconds=10,
        jobTimeoutSeconds=30,
        worker={"app": "jobqueue.worker.testing:app", "concurrency": 2},
        scaling={
            "minReplicas": 0,
            "maxReplicas": 4,
            "lagPerReplica": 4,
            "scaleDownStabilizationSeconds": 10,
            "idleSecondsBeforeZero": 10,
            "pollIntervalSeconds": 1,
        },
    )
    queue["metadata"]["name"] = "e2e-sleep"
    apply(queue)
    deployment = "e2e-sleep-worker"
    wait_until(lambda: deployment_replicas(installed.namespace, deployment), 120, deployment)
    port = redis_forward.connection_pool.connection_kwargs["port"]
    with Client.from_url(f"redis://127.0.0.1:{port}/0", stream="e2e:work") as client:
        # when a backlog arrives, the operator scales up
        jobs = [NewJob("sleep", {"ms": SLEEP_MS}) for _ in range(SLEEP_JOBS)]
        ids = [job.job_id for job in client.enqueue_many(jobs)]
        wait_until(
            lambda: (deployment_replicas(installed.namespace, deployment) or (0, 0))[1] >= 2,
            300,
            "two ready workers",
        )
        # and a worker pod is killed without grace while it holds jobs
        victim = wait_until(lambda: _busy_worker_pod(redis_forward, "e2e:work"), 120, "busy pod")
        run("kubectl", "-n", installed.namespace, "delete", "pod", victim,
            "--grace-period=0", "--force")  # fmt: skip
        # then every job still succeeds (its jobs were reclaimed) and none was dead-lettered
        wait_until(lambda: all_succeeded(client, ids), 600, "every sleep job to succeed")
    assert redis_forward.xlen("e2e:dead") == 0
    # and once the queue is idle the workers scale back to zero
    wait_until(
        lambda: deployment_replicas(installed.namespace, deployment) == (0, 0),
        300,
        "scale to zero",
    )
