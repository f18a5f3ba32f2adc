"""``jobqueue``: the console script.

Each component defines its own click commands next to its code; this group only names
them. Commands are imported when invoked, so ``jobqueue --help`` and a worker start do
not pay for Kopf's import.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from jobqueue.core.startup import paused_gc

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (import path of the click command, one-line help)
    "worker": ("jobqueue.worker.cli:worker", "Run a worker for APP_REF (module:attribute)."),
    "job-types": (
        "jobqueue.worker.cli_types:job_types",
        "Print the job types file (payload JSON Schemas) of APP_REF's handlers.",
    ),
    "producer": ("jobqueue.producer.cli_serve:producer", "Serve the HTTP producer API."),
    "operator": ("jobqueue.operator.cli:operator", "Run the Kubernetes operator (Kopf)."),
    "dev": ("jobqueue.local.cli:dev", "Run a JobQueue on this machine (local mode)."),
    "enqueue": ("jobqueue.producer.cli:enqueue", "Enqueue jobs directly into Redis."),
    "stats": ("jobqueue.producer.cli:stats", "Show a queue's length, lag and consumers."),
    "jobs": ("jobqueue.producer.cli:jobs", "Read, wait for or cancel one job."),
    "dead": ("jobqueue.producer.cli:dead", "List, replay or delete dead letters."),
    "migrate-keys": (
        "jobqueue.producer.cli_migrate:migrate",
        "Move a queue's data from the key names before 0.2.",
    ),
    "crd": ("jobqueue.operator.cli:crd", "Print the JobQueue CRD generated from the spec model."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, _, attribute = COMMANDS[cmd_name][0].partition(":")
        with paused_gc():  # a command's imports are most of a start (jobqueue.core.startup)
            command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name][0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jobqueue-cli")
def cli() -> None:
    """jobqueue: a Kubernetes-native, fault-tolerant job queue on Redis Streams."""


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="jobqueue")
