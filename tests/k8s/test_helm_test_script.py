"""The `helm test` script (charts/jobqueue/files/helm_test.py) with the environment the chart's
test pod gets, against a real Redis, the operator's real HTTP endpoint, a real producer
process and a real worker running the demo app."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from k8s.objects import CHART, NAMESPACE, Obj, render_chart
from support.redis_server import free_port

from jobqueue.operator.http import start_http
from jobqueue.operator.metrics import OperatorMetrics

SCRIPT = (CHART / "files" / "helm_test.py").read_text()
JOBQUEUE = str(Path(sys.executable).parent / "jobqueue")
ON_A_SAMPLE_QUEUE = {"tests": {"stream": "jobs:work"}}
"""`helm install ... --set tests.stream=jobs:work`: the sample JobQueue (demo app) serves it."""


def helm_test_pod(values: dict[str, Any] | None = None) -> Obj:
    (pod,) = [obj for obj in render_chart(values) if obj["kind"] == "Pod"]
    return pod


def pod_env(
    redis_url: str, timeout_s: int, values: dict[str, Any] | None = None, **ports: int
) -> dict[str, str]:
    """The test pod's environment as the chart renders it, pointed at this test's servers:
    ``operator=PORT`` / ``producer=PORT`` replace the Services' addresses."""
    container = helm_test_pod(values)["spec"]["containers"][0]
    env = {var["name"]: var["value"] for var in container["env"] if "value" in var}
    for name, port in ports.items():
        key = f"TEST_{name.upper()}_URL"
        env[key] = urlsplit(env[key])._replace(netloc=f"127.0.0.1:{port}").geturl()
    return {**env, "REDIS_URL": redis_url, "TEST_TIMEOUT_S": str(timeout_s), "PATH": "/usr/bin"}


def run_script(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, text=True
    )


@pytest.fixture
def operator_port() -> Iterator[int]:
    """The operator's real /healthz and /metrics server, on a loop of its own."""
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def serve() -> None:
        runner = await start_http(OperatorMetrics(), port)
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass  # the fixture's end: this task is the thread's whole program
        finally:
            await runner.cleanup()

    task = loop.create_task(serve())
    thread = threading.Thread(target=loop.run_until_complete, args=(task,), daemon=True)
    thread.start()
    assert started.wait(10)
    yield port
    loop.call_soon_threadsafe(task.cancel)
    thread.join(10)


@pytest.fixture
def producer_port(redis_url: str, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    command = [JOBQUEUE, "producer", "--redis-url", redis_url, "--host", "127.0.0.1"]
    with (tmp_path / "producer.log").open("wb") as log:
        producer = subprocess.Popen([*command, "--port", str(port)], stdout=log, stderr=log)
    yield port
    producer.terminate()
    producer.wait(30)


def test_a_default_install_passes_without_any_jobqueue(
    redis_url: str, operator_port: int, sync_redis: redis.Redis
) -> None:
    # given the default values (no JobQueue, no producer): Redis and the operator are checked
    env = pod_env(redis_url, timeout_s=30, operator=operator_port)
    assert "JOBQUEUE_STREAM" not in env
    assert "TEST_PRODUCER_URL" not in env
    script = run_script(env)
    output, _ = script.communicate(timeout=60)
    assert script.returncode == 0, output
    assert "redis: PING answered" in output
    assert "operator:" in output
    assert sync_redis.keys("*") == []  # and nothing was enqueued


def test_the_producer_is_checked_when_the_chart_deploys_it(
    redis_url: str, operator_port: int, producer_port: int
) -> None:
    values = {"producer": {"enabled": True}}
    env = pod_env(redis_url, 30, values, operator=operator_port, producer=producer_port)
    script = run_script(env)
    output, _ = script.communicate(timeout=60)
    assert script.returncode == 0, output
    assert f"producer: http://127.0.0.1:{producer_port}/readyz answers 200" in output


def test_an_operator_that_does_not_answer_fails_the_test_with_the_reason(redis_url: str) -> None:
    env = pod_env(redis_url, timeout_s=2, operator=free_port())  # nothing listens there
    script = run_script(env)
    output, _ = script.communicate(timeout=60)
    assert script.returncode == 1
    assert "FAILED: the operator did not answer" in output


def test_an_unreachable_redis_fails_the_test_with_the_reason(operator_port: int) -> None:
    env = pod_env(f"redis://127.0.0.1:{free_port()}/0", 10, operator=operator_port)
    script = run_script(env)
    output, _ = script.communicate(timeout=60)
    assert script.returncode == 1
    assert "FAILED: Redis did not answer PING" in output


def wait_for_entry(client: redis.Redis, stream: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while client.xlen(stream) == 0:
        assert time.monotonic() < deadline, "the script enqueued nothing"
        time.sleep(0.05)


def test_with_a_stream_named_a_job_goes_through_a_demo_worker(
    redis_url: str, operator_port: int, sync_redis: redis.Redis
) -> None:
    # given the test pod's script waiting on its job
    env = pod_env(redis_url, 90, ON_A_SAMPLE_QUEUE, operator=operator_port)
    script = run_script(env)
    wait_for_entry(sync_redis, env["JOBQUEUE_STREAM"])
    # when a worker of the demo app (what the sample JobQueue runs) drains the queue
    subprocess.run(
        [JOBQUEUE, "worker", "jobqueue.worker.demo:app", "--burst", "--http-port", "0"],
        env={**env, "PATH": "/usr/bin"},
        timeout=90,
        check=True,
        capture_output=True,
    )
    # then the script reports success
    output, _ = script.communicate(timeout=90)
    assert script.returncode == 0, output
    assert output.strip().endswith(": succeeded")
    payload = json.loads(env["TEST_PAYLOAD"])
    assert payload == {"to": "helm-test@example.com", "template": "helm-test"}


def test_with_a_stream_named_the_script_fails_when_no_worker_serves_it(
    redis_url: str, operator_port: int
) -> None:
    script = run_script(pod_env(redis_url, 3, ON_A_SAMPLE_QUEUE, operator=operator_port))
    output, _ = script.communicate(timeout=60)
    assert script.returncode == 1
    assert "did not finish within the timeout" in output


@pytest.mark.parametrize("producer", [False, True])
def test_the_urls_name_services_and_ports_the_chart_creates(producer: bool) -> None:
    objects = render_chart({"producer": {"enabled": producer}})
    services = {
        f"{o['metadata']['name']}.{NAMESPACE}.svc:{port['port']}"
        for o in objects
        if o["kind"] == "Service"
        for port in o["spec"]["ports"]
    }
    (pod,) = [o for o in objects if o["kind"] == "Pod"]
    env = {v["name"]: v.get("value", "") for v in pod["spec"]["containers"][0]["env"]}
    urls = [env[k] for k in ("TEST_OPERATOR_URL", "TEST_PRODUCER_URL") if k in env]
    assert len(urls) == (2 if producer else 1)
    for url in urls:
        assert urlsplit(url).netloc in services, url
