"""The jobqueue worker: runs the handlers of an `App` for the jobs of one Redis stream.

Public names: `App` (register handlers by job type), `JobContext` (what a handler gets),
`Backoff` (retry delays), `WorkerSettings` and `Worker` (the runtime). The exceptions
that steer a job's outcome (`Retry`, `Fatal`) live in `jobqueue.core.errors`.
"""

from jobqueue.worker.app import App, JobContext
from jobqueue.worker.backoff import Backoff
from jobqueue.worker.runner import Worker
from jobqueue.worker.settings import WorkerSettings

__all__ = ["App", "Backoff", "JobContext", "Worker", "WorkerSettings"]
