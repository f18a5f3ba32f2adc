"""The `helm test` script (charts/jobqueue/files/helm_test.py) against a real Redis and a
real worker running the demo app, with the environment the chart's test pod gets."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import redis
from k8s.objects import CHART, render_chart

SCRIPT = (CHART / "files" / "helm_test.py").read_text()
JOBQUEUE = str(Path(sys.executable).parent / "jobqueue")


def pod_env(redis_url: str, timeout_s: int) -> dict[str, str]:
    """The test pod's environment as the chart renders it, pointed at this test's Redis."""
    (pod,) = [obj for obj in render_chart() if obj["kind"] == "Pod"]
    env = {
        var["name"]: var["value"] for var in pod["spec"]["containers"][0]["env"] if "value" in var
    }
    return {**env, "REDIS_URL": redis_url, "TEST_TIMEOUT_S": str(timeout_s), "PATH": "/usr/bin"}


def start_script(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, text=True
    )


def wait_for_entry(client: redis.Redis, stream: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while client.xlen(stream) == 0:
        assert time.monotonic() < deadline, "the script enqueued nothing"
        time.sleep(0.05)


def test_the_script_passes_once_a_demo_worker_ran_its_job(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    # given the test pod's script waiting on its job
    env = pod_env(redis_url, timeout_s=90)
    script = start_script(env)
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


def test_the_script_fails_with_a_reason_when_no_worker_serves_the_queue(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    script = start_script(pod_env(redis_url, timeout_s=2))
    output, _ = script.communicate(timeout=60)
    assert script.returncode == 1
    assert "did not finish within the timeout" in output
