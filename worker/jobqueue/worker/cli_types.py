"""``jobqueue job-types APP_REF``: the job types file of an app's handlers, from their
pydantic payload models (`jobqueue.worker.payloads`), for ``JOBQUEUE_JOB_TYPES_FILE``."""

from __future__ import annotations

from pathlib import Path

import click

from jobqueue.core.errors import ConfigError
from jobqueue.worker.app import load_app
from jobqueue.worker.payloads import job_types_document


@click.command("job-types")
@click.argument("app_ref")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of standard output.",
)
def job_types(app_ref: str, output: Path | None) -> None:
    """Print the job types file (JSON: type -> payload JSON Schema, null = any object) of
    APP_REF's handlers, for the producer's JOBQUEUE_JOB_TYPES_FILE."""
    try:
        app = load_app(app_ref)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    document = job_types_document(app.payload_models())
    if output is None:
        click.echo(document.decode(), nl=False)
    else:
        output.write_bytes(document)
