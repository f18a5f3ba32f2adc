"""Start-up import contract: each command imports only what it runs on.

A worker starts in a pod on every scale-up; what it imports is most of its start-up
time (bench/startup.py). The worker never needs aiohttp (its side server is asyncio's),
Kopf, rich or the producer's validation libraries; the producer never needs Kopf or rich,
and listens (demo job types, no file) without jsonschema, fastjsonschema or yaml: those
load when a job types file is configured or a job needs them, the OpenAPI document's
builder on its first request, and prometheus_client on the first scrape of /metrics.
Checked in a fresh interpreter, as the console script runs.
"""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

HEAVY = ("aiohttp", "kopf", "rich", "jsonschema", "pydantic", "yaml", "pythonjsonlogger")

PROBE = """
import pkgutil, sys, importlib, orjson
from jobqueue.cli.main import cli
import click
ctx = click.Context(cli)
command = cli.get_command(ctx, sys.argv[1])
for package in sys.argv[2:]:
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if not info.name.endswith((".demo", ".testing")):
            importlib.import_module(info.name)
print(orjson.dumps(sorted(m for m in sys.modules if "." not in m)).decode())
"""


def imported_by(command: str, *packages: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, command, *packages],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(orjson.loads(done.stdout))


def test_the_worker_command_and_every_worker_module_import_none_of_the_heavy_libraries() -> None:
    loaded = imported_by("worker", "jobqueue.worker", "jobqueue.core")
    assert {"redis", "uvloop", "prometheus_client"} <= loaded  # the probe did import
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("command", ["producer", "stats", "dead", "enqueue"])
def test_producer_and_client_commands_do_not_import_kopf(command: str) -> None:
    loaded = imported_by(command)
    assert "kopf" not in loaded
    if command == "producer":  # rich is for the client commands' tables only
        assert "rich" not in loaded


SERVE_PROBE = """
import sys, orjson
from jobqueue.cli.main import cli
from jobqueue.producer.app import create_app
from jobqueue.producer.settings import ProducerSettings
create_app(ProducerSettings())
print(orjson.dumps(sorted(sys.modules)).decode())
"""


def test_a_producer_without_a_job_types_file_starts_without_validation_or_prometheus() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SERVE_PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(orjson.loads(done.stdout))
    assert {"aiohttp", "jobqueue.producer.routes_jobs"} <= loaded  # the app was built
    lazy = {"jsonschema", "fastjsonschema", "yaml", "jobqueue.producer.openapi"}
    lazy.add("prometheus_client")  # imported on the first scrape of /metrics
    assert loaded.isdisjoint(lazy), sorted(loaded & lazy)
