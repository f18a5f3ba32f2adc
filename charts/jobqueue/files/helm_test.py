"""`helm test`: the release works: Redis answers, the operator is up, the producer is ready,
and (when a stream is named) one job goes through a worker.

Runs in the jobqueue image (python -c). Environment: REDIS_URL; TEST_OPERATOR_URL (the
operator's /healthz); TEST_PRODUCER_URL (the producer's /readyz, empty without a
producer); JOBQUEUE_STREAM (empty: no job is enqueued, a default install serves no queue
yet), TEST_JOB_TYPE, TEST_PAYLOAD (JSON object), TEST_TIMEOUT_S. Exit 0 when every check
passed; 1 with the reason of the first that did not.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

from jobqueue.core.client import Client
from jobqueue.core.settings import QueueSettings

deadline = time.monotonic() + float(os.environ.get("TEST_TIMEOUT_S", "120"))


def fail(reason: str) -> None:
    print(f"FAILED: {reason}", flush=True)
    sys.exit(1)


def answers_200(url: str) -> str:
    """'' when ``url`` answered 200 before the deadline, else the last problem."""
    problem = "not tried"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return ""
                problem = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            problem = str(exc)
        time.sleep(1)
    return problem


for name, url in (
    ("operator", os.environ.get("TEST_OPERATOR_URL", "")),
    ("producer", os.environ.get("TEST_PRODUCER_URL", "")),
):
    if url:
        problem = answers_200(url)
        if problem:
            fail(f"the {name} did not answer {url} with 200: {problem}")
        print(f"{name}: {url} answers 200", flush=True)

stream = os.environ.get("JOBQUEUE_STREAM", "")
settings = QueueSettings.from_env()
with Client(settings) as client:
    try:
        answered = client.ping()
    except Exception as exc:  # any failure to reach Redis is the test's answer
        fail(f"Redis did not answer PING: {exc!r}")
    if not answered:
        fail("Redis did not answer PING")
    print("redis: PING answered", flush=True)
    if not stream:
        print("no stream named (tests.stream): no job enqueued", flush=True)
        sys.exit(0)
    job_type = os.environ.get("TEST_JOB_TYPE", "noop")
    payload = json.loads(os.environ.get("TEST_PAYLOAD", "{}"))
    job = client.enqueue(job_type, payload)
    print(f"enqueued {job_type} job {job.job_id} on {settings.stream}", flush=True)
    while time.monotonic() < deadline:
        info = client.get(job.job_id)
        if info is not None and info.finished:
            print(f"job {job.job_id}: {info.state}", flush=True)
            sys.exit(0 if info.state == "succeeded" else 1)
        time.sleep(1)
fail(
    f"job {job.job_id} did not finish within the timeout; is a JobQueue serving "
    f"{settings.stream} with a handler for {job_type!r}?"
)
