"""Fixtures of the local-mode tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from local.dev_process import DevProcess


@pytest.fixture
def start_dev() -> Iterator[Callable[..., DevProcess]]:
    """Start ``jobqueue dev`` with arguments; whatever is still running is stopped after."""
    started: list[DevProcess] = []

    def start(*args: str, redis_url: str | None = None) -> DevProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "JOBQUEUE_"))}
        if redis_url is not None:
            env["REDIS_URL"] = redis_url
        env["PYTHONUNBUFFERED"] = "1"
        # the session's state file (tests/conftest.py), never the user's
        env["JOBQUEUE_DEV_STATE_FILE"] = os.environ["JOBQUEUE_DEV_STATE_FILE"]
        dev = DevProcess(list(args), env)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        dev.stop()
