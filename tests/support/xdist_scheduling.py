"""How pytest-xdist shares the suite among its workers (`scripts/test` runs
``-n N --dist loadgroup``).

Two things the stock schedulers do not do here:

- Groups. A test sharing an expensive fixture wider than itself (a module-scoped built
  wheel or Sentinel setup, the session's 3+3 Redis Cluster) must run on the same worker
  as the others sharing it, or each worker sets the fixture up again; the cluster ones
  must also never run at the same time as each other (they flush and fail over the one
  cluster). xdist's own ``loadgroup`` reads ``xdist_group`` marks by rewriting node ids,
  which pytest 9.2 no longer allows (pytest-xdist issue 1386): the marks are silently
  ignored. So each worker writes the groups it collected to a file the controller reads.
- Order. The suite waits more than it computes, and a few tests take 10-30 s: started
  last, one of them alone would set the wall time. Units are handed out longest first,
  by an estimate from the ``slow`` mark (`SLOW_S`), as in LPT scheduling.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

CHANNEL = "JOBQUEUE_TEST_SCHEDULE_DIR"
"""Directory where workers write what they collected (set by the controller)."""

SLOW_S, FAST_S = 10.0, 0.5
"""Estimated seconds of a test marked ``slow`` and of any other."""


def open_channel() -> None:
    """In the controller, before the workers start: the directory they write to."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        os.environ[CHANNEL] = tempfile.mkdtemp(prefix="jobqueue-test-schedule-")


def publish(items: list[pytest.Item], group_of: dict[str, str]) -> None:
    """In a worker, after collection: each test's group and estimated duration."""
    directory, worker = os.environ.get(CHANNEL), os.environ.get("PYTEST_XDIST_WORKER")
    if not directory or not worker:
        return
    tests = {
        item.nodeid: {
            "group": group_of.get(item.nodeid),
            "estimate_s": SLOW_S if item.get_closest_marker("slow") else FAST_S,
        }
        for item in items
    }
    path = Path(directory) / f"{worker}.json"
    path.with_suffix(".tmp").write_text(json.dumps(tests))
    path.with_suffix(".tmp").replace(path)  # the controller never reads half a file


class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """xdist's load-scope scheduling with our groups as the scopes, longest first.

    A test without a group is a unit of its own. A worker is given the next unit when it
    has at most two tests left, so the long units started first end about together.
    """

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        self._tests: dict[str, dict[str, Any]] | None = None
        self._estimates: dict[str, float] = {}

    def _known(self) -> dict[str, dict[str, Any]]:
        # Read once, when the first worker's collection is scheduled: every worker wrote
        # its file before reporting its collection to this process.
        if self._tests is None:
            self._tests = {}
            directory = os.environ.get(CHANNEL)
            for path in sorted(Path(directory).glob("*.json")) if directory else []:
                self._tests.update(json.loads(path.read_text()))
        return self._tests

    def _split_scope(self, nodeid: str) -> str:
        group = self._known().get(nodeid, {}).get("group")
        return f"group:{group}" if group else nodeid

    def _estimate_s(self, scope: str) -> float:
        if scope not in self._estimates:
            known = self._known()
            self._estimates[scope] = sum(
                known.get(nodeid, {}).get("estimate_s", FAST_S) for nodeid in self.workqueue[scope]
            )
        return self._estimates[scope]

    def _assign_work_unit(self, node: WorkerController) -> None:
        longest = max(self.workqueue, key=self._estimate_s)  # the first of equals: in order
        self.workqueue.move_to_end(longest, last=False)
        super()._assign_work_unit(node)
