"""The pods' environment, mounted Secrets and probe paths are what the real processes read.

The producer Deployment the chart renders is run as a local process with that exact
environment (Secrets resolved to files and values as the kubelet would) against a real
Redis, and probed and called over real HTTP on the paths its probes name.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s.objects import Obj, all_on_values, render_chart
from support.redis_server import free_port

from jobqueue.operator.http import create_app
from jobqueue.operator.metrics import OperatorMetrics
from jobqueue.operator.settings import OperatorSettings
from jobqueue.producer.settings import ProducerSettings, read_tokens_file

JOBQUEUE = str(Path(sys.executable).parent / "jobqueue")
DOWNWARD_API = {
    "metadata.name": "jq-jobqueue-operator-1",
    "metadata.namespace": "jobqueue",
    "metadata.labels['apps.kubernetes.io/pod-index']": "1",
}
"""What the kubelet gives the second pod of the operator StatefulSet."""


def _one(objects: list[Obj], kind: str, suffix: str) -> Obj:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    return found


def container_env(objects: list[Obj], pod: Obj, redis_url: str, files: Path) -> dict[str, str]:
    """The container's environment as the kubelet builds it; Secret volumes become files
    under ``files`` and variables naming their mount paths are pointed there."""
    container = pod["containers"][0]
    env: dict[str, str] = {}
    for var in container["env"]:
        source = var.get("valueFrom", {})
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in source:
            env[var["name"]] = redis_url  # the only Secret-sourced variable is REDIS_URL
        elif "fieldRef" in source:
            env[var["name"]] = DOWNWARD_API[source["fieldRef"]["fieldPath"]]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    for volume in pod["volumes"]:
        if "secret" not in volume:
            continue
        secret = _one(objects, "Secret", volume["secret"]["secretName"])
        for item in volume["secret"]["items"]:
            local = files / volume["name"] / item["path"]
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(base64.b64decode(secret["data"][item["key"]]))
            mounted = f"{mounts[volume['name']]}/{item['path']}"
            env = {name: str(local) if value == mounted else value for name, value in env.items()}
    return env


def _http(port: int, path: str, body: Any = None, token: str | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, ConnectionError):
        return 0


@pytest.fixture
def producer(redis_url: str, tmp_path: Path) -> Iterator[tuple[int, Obj, list[Obj]]]:
    """`jobqueue producer` run with the all-on chart's environment; yields its local port."""
    objects = render_chart(all_on_values())
    pod = _one(objects, "Deployment", "-producer")["spec"]["template"]["spec"]
    env = container_env(objects, pod, redis_url, tmp_path)
    port = free_port()
    process = subprocess.Popen(
        [JOBQUEUE, *pod["containers"][0]["args"]],
        env={**env, "JOBQUEUE_PRODUCER_HOST": "127.0.0.1", "JOBQUEUE_PRODUCER_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield port, pod, objects
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_producer_pod_serves_its_probes_and_honours_the_chart_tokens(
    producer: tuple[int, Obj, list[Obj]],
) -> None:
    port, pod, _ = producer
    container = pod["containers"][0]
    # given the producer started with the pod's environment; when the kubelet probes it
    liveness = container["livenessProbe"]["httpGet"]["path"]
    deadline = time.monotonic() + 60
    while _http(port, liveness) != 200:
        assert time.monotonic() < deadline, "the producer never answered its liveness probe"
        time.sleep(0.1)
    assert _http(port, container["readinessProbe"]["httpGet"]["path"]) == 200
    assert _http(port, container["startupProbe"]["httpGet"]["path"]) == 200
    # then jobs need one of the chart's tokens
    job = {"type": "email", "payload": {"to": "a@example.com", "template": "welcome"}}
    assert _http(port, "/jobs", job) == 401
    for token in all_on_values()["producer"]["auth"]["tokens"]:
        assert _http(port, "/jobs", job, token=token) == 202


def test_the_producer_settings_read_the_rendered_environment(
    redis_url: str, tmp_path: Path
) -> None:
    objects = render_chart({"producer": {"enabled": True}})
    pod = _one(objects, "Deployment", "-producer")["spec"]["template"]["spec"]
    settings = ProducerSettings.from_env(container_env(objects, pod, redis_url, tmp_path))
    assert settings.auth_enabled
    assert settings.auth_tokens_file is not None
    (generated,) = read_tokens_file(settings.auth_tokens_file)
    assert len(generated) == 48
    assert settings.port == pod["containers"][0]["ports"][0]["containerPort"]
    assert settings.queue.redis_url == redis_url


@pytest.mark.parametrize("values", [None, "all-on"], ids=["default", "all-on"])
def test_the_operator_settings_read_the_rendered_environment(
    values: str | None, redis_url: str, tmp_path: Path
) -> None:
    objects = render_chart(all_on_values() if values else None)
    pod = _one(objects, "StatefulSet", "-operator")["spec"]["template"]["spec"]
    settings = OperatorSettings.from_env(container_env(objects, pod, redis_url, tmp_path))
    watched = all_on_values()["operator"]["watchNamespaces"] if values else []
    assert settings.namespaces == tuple(watched)
    container = pod["containers"][0]
    (http,) = container["ports"]
    assert settings.http_port == http["containerPort"]
    routes = create_app(OperatorMetrics()).router.routes()
    served = {route.resource.canonical for route in routes if route.resource is not None}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == http["name"]
        assert container[probe]["httpGet"]["path"] in served
    assert not settings.standalone
    # the pod index is the peering priority: replicas never tie (ties pause them all)
    assert settings.priority == 1
    peering_kind = "KopfPeering" if watched else "ClusterKopfPeering"
    assert {o["metadata"]["name"] for o in objects if o["kind"] == peering_kind} == {
        settings.peering
    }
