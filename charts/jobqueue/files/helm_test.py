"""`helm test`: enqueue one job and wait until a worker finished it.

Runs in the jobqueue image (python -c). Environment: REDIS_URL, JOBQUEUE_STREAM,
TEST_JOB_TYPE, TEST_PAYLOAD (JSON object), TEST_TIMEOUT_S. Exit 0 when the job
succeeded; 1 with the reason when it ended otherwise or did not finish in time.
"""

import json
import os
import sys
import time

from jobqueue.core.client import Client
from jobqueue.core.settings import QueueSettings

settings = QueueSettings.from_env()
job_type = os.environ.get("TEST_JOB_TYPE", "noop")
payload = json.loads(os.environ.get("TEST_PAYLOAD", "{}"))
deadline = time.monotonic() + float(os.environ.get("TEST_TIMEOUT_S", "120"))

with Client(settings) as client:
    job = client.enqueue(job_type, payload)
    print(f"enqueued {job_type} job {job.job_id} on {settings.stream}", flush=True)
    while time.monotonic() < deadline:
        info = client.get(job.job_id)
        if info is not None and info.finished:
            print(f"job {job.job_id}: {info.state}", flush=True)
            sys.exit(0 if info.state == "succeeded" else 1)
        time.sleep(1)
print(
    f"job {job.job_id} did not finish within the timeout; is a JobQueue serving "
    f"{settings.stream} with a handler for {job_type!r}?",
    flush=True,
)
sys.exit(1)
