"""The local-process backend: worker processes started and stopped to a replica count.

This is what a Deployment and the kubelet do for the operator, on one machine: the pool
runs ``desired`` workers, each with a unique consumer name; scaling down sends SIGTERM
to the newest ones (they finish in-flight jobs within their grace period, then are
SIGKILLed); a worker that dies on its own is replaced, and the other workers reclaim its
pending entries with XAUTOCLAIM. A worker that keeps dying right after its start is
restarted with a growing delay, as the kubelet's CrashLoopBackOff does.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from jobqueue.local.private_redis import free_port
from jobqueue.local.processes import Child, describe_exit, spawn, stop_all

QUICK_EXIT_S = 10.0
"""A worker that exits unexpectedly sooner than this after its start counts as a crash loop."""
MAX_RESTART_DELAY_S = 30.0
KILL_MARGIN_S = 5.0
"""Extra seconds past the grace period before a stopping worker is SIGKILLed."""

ArgvFor = Callable[[str, int], list[str]]
"""Builds a worker's argv from its consumer name and side-server port (0 = off)."""


class WorkerPool:
    """Worker processes of one queue, reconciled toward a desired count."""

    def __init__(
        self,
        argv_for: ArgvFor,
        log_dir: Path,
        *,
        name_prefix: str,
        grace_period_s: float,
        on_event: Callable[[str], None],
        with_http: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._argv_for = argv_for
        self._log_dir = log_dir
        # A fresh suffix per run: a consumer name is never reused, so the group's view of
        # a dead consumer and its pending entries never mixes with a new process.
        self._prefix = f"{name_prefix}-{secrets.token_hex(2)}"
        self._grace_period_s = grace_period_s
        self._on_event = on_event
        self._with_http = with_http
        self._env = dict(env or {})
        self._seq = 0
        self._quick_crashes = 0
        self._not_before_s = 0.0
        self.workers: list[Child] = []
        """Every worker not yet reaped: running, or stopping within its grace period."""

    @property
    def running(self) -> list[Child]:
        """Workers that are alive and meant to keep running."""
        return [w for w in self.workers if w.stopping_since_s is None and w.alive]

    @property
    def stopping(self) -> list[Child]:
        return [w for w in self.workers if w.stopping_since_s is not None]

    def reconcile(self, desired: int, now_s: float | None = None) -> None:
        """Reap exited workers, then start or stop workers until ``desired`` run."""
        now = time.monotonic() if now_s is None else now_s
        self._reap(now)
        self._enforce_grace(now)
        running = self.running
        if len(running) > desired:
            # Newest first: the oldest workers have the warmest state and longest uptime.
            for child in sorted(running, key=lambda w: w.started_at_s)[desired:]:
                child.terminate(now)
                self._on_event(f"stopping {child.name} (scale down)")
        elif len(running) < desired and now >= self._not_before_s:
            for _ in range(desired - len(running)):
                self._start_one()

    def _start_one(self) -> None:
        self._seq += 1
        name = f"{self._prefix}-w{self._seq}"
        port = free_port() if self._with_http else 0
        child = spawn(
            name, self._argv_for(name, port), self._log_dir, env=self._env, http_port=port
        )
        self.workers.append(child)
        self._on_event(f"started {name} (pid {child.pid})")

    def _reap(self, now: float) -> None:
        if any(now - w.started_at_s >= QUICK_EXIT_S for w in self.running):
            self._quick_crashes = 0  # workers stay up again: the crash loop is over
        shortest_uptime_s: float | None = None
        for child in [w for w in self.workers if not w.alive]:
            self.workers.remove(child)
            code = child.returncode
            assert code is not None
            if child.stopping_since_s is not None:
                self._on_event(f"{child.name} stopped ({describe_exit(code)})")
                continue
            self._on_event(f"{child.name} died ({describe_exit(code)}); replacing it")
            tail = child.log_tail().splitlines()[-1:]
            if tail and code > 0:
                self._on_event(f"  {child.name}: {tail[0][:160]}")
            uptime_s = now - child.started_at_s
            shortest_uptime_s = min(uptime_s, shortest_uptime_s or uptime_s)
        if shortest_uptime_s is not None:
            # Once per reconcile: workers that die together are one crash, not several.
            self._note_crash(shortest_uptime_s, now)

    def _note_crash(self, uptime_s: float, now: float) -> None:
        if uptime_s >= QUICK_EXIT_S:
            self._quick_crashes = 0
            return
        self._quick_crashes += 1
        if self._quick_crashes == 1:
            return  # one early death (an OOM kill, a bad job) is replaced at once
        delay_s = min(MAX_RESTART_DELAY_S, 2.0 ** (self._quick_crashes - 2))
        self._not_before_s = now + delay_s
        self._on_event(f"workers exit right after start: next start in {delay_s:.0f}s")

    def _enforce_grace(self, now: float) -> None:
        limit_s = self._grace_period_s + KILL_MARGIN_S
        for child in self.stopping:
            assert child.stopping_since_s is not None
            if child.alive and not child.killed and now - child.stopping_since_s > limit_s:
                child.kill()
                self._on_event(f"{child.name} outlived its grace period: SIGKILL")

    def stop(self) -> None:
        """Stop every worker (SIGTERM, grace period, SIGKILL) and wait for all to exit."""
        stop_all(self.workers, self._grace_period_s + KILL_MARGIN_S)
        for child in self.workers:
            self._on_event(f"{child.name} stopped ({describe_exit(child.process.returncode)})")
        self.workers.clear()
