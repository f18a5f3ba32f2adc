"""The job types the local producer accepts: those the queue's worker app handles.

Without ``JOBQUEUE_JOB_TYPES_FILE`` the producer accepts only the demo app's four types.
Local mode runs whatever app the JobQueue names, so for any other app it writes a job
types file listing that app's handler types (any JSON object as payload: the handlers
check their own payloads) and hands it to the producer. A file the user set wins.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml

from jobqueue.core.errors import ConfigError
from jobqueue.worker.app import load_app

ENV = "JOBQUEUE_JOB_TYPES_FILE"
DEMO_APP = "jobqueue.worker.demo:app"


def producer_job_types_env(
    app_ref: str,
    run_dir: Path,
    on_event: Callable[[str], None],
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for the producer child: ``{ENV: path}`` when local mode wrote a file."""
    env = os.environ if environ is None else environ
    if env.get(ENV) or app_ref == DEMO_APP:
        return {}
    try:
        app = load_app(app_ref)
    except ConfigError as exc:
        # The workers will fail on the same import and say so; the producer keeps its
        # default types meanwhile.
        on_event(f"producer keeps the demo job types: {exc}")
        return {}
    if not app.handlers:
        on_event(f"producer keeps the demo job types: {app_ref} has no handlers")
        return {}
    path = run_dir / "job-types.yaml"
    path.write_text(yaml.safe_dump({job_type: None for job_type in sorted(app.handlers)}))
    on_event(f"producer accepts the types of {app_ref}: {', '.join(sorted(app.handlers))}")
    return {ENV: str(path)}
