"""The status of one JobQueue: conditions, counts and when to write them (no I/O).

Writing status on every poll (1 s) for every JobQueue would flood the API server and
etcd with versions nobody reads. So `StatusBook.pending_patch` answers with a patch only
when something a user acts on changed (replicas, desired replicas, a condition, the
observed generation, the last scale) or, for counts that move all the time (lag,
pending, rates), at most once per ``status_interval_s``.

Conditions (``status`` is ``"True"``/``"False"``):

- ``Ready``: the spec is valid, the Deployment exists and Redis answers;
- ``RedisReachable``: the last sample of Redis succeeded;
- ``ScalingLimited``: the load asks for more than ``maxReplicas``;
- ``RateLimited``: the load asks for more replicas than ``spec.limits`` can keep busy
  (only for a queue with limits);
- ``PodTemplateConflict``: the pod template sets fields the operator owns (dropped; the
  message names them);
- ``LanesOrphaned``: lane streams no longer in ``spec.lanes`` still hold jobs (only once
  that happened; `jobqueue.operator.orphan_lanes`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

VOLATILE = frozenset(
    {
        *("lag", "lagSource", "pending", "delayed", "deadLetters", "lanes"),
        *("arrivalRate", "completionRate", "limits"),
    }
)
"""Status fields that change on most polls: written at most once per interval."""


def utc_now() -> str:
    """Now as the API server writes times: RFC 3339, seconds, ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatusBook:
    """What the operator last wrote to one JobQueue's status, and what it would write now."""

    def __init__(self) -> None:
        self.conditions: dict[str, dict[str, Any]] = {}
        self.fields: dict[str, Any] = {}
        self._written: dict[str, Any] = {}
        self._written_at_s: float | None = None

    def set_condition(
        self, kind: str, ok: bool, reason: str, message: str = "", generation: int | None = None
    ) -> bool:
        """Record a condition; True when its status or reason changed (worth an Event)."""
        old = self.conditions.get(kind)
        status = "True" if ok else "False"
        changed = old is None or old["status"] != status or old["reason"] != reason
        self.conditions[kind] = {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message[:1000],
            "lastTransitionTime": utc_now()
            if old is None or old["status"] != status
            else old["lastTransitionTime"],
            **({} if generation is None else {"observedGeneration": generation}),
        }
        return changed

    def update(self, **fields: Any) -> None:
        """Set status fields (camelCase names, as written)."""
        self.fields.update(fields)

    def current(self) -> dict[str, Any]:
        """The whole status as it stands in memory."""
        return {**self.fields, "conditions": [self.conditions[k] for k in sorted(self.conditions)]}

    def pending_patch(self, now_s: float, interval_s: float) -> dict[str, Any] | None:
        """The status to write now, or None when writing can wait (see module doc)."""
        status = self.current()
        if status == self._written:
            return None
        important = {k for k in status.keys() | self._written.keys() if k not in VOLATILE}
        changed_important = any(status.get(k) != self._written.get(k) for k in important)
        stale = self._written_at_s is None or now_s - self._written_at_s >= interval_s
        if not (changed_important or stale):
            return None
        return status

    def written(self, status: dict[str, Any], now_s: float) -> None:
        """Remember a status the API server accepted."""
        self._written = status
        self._written_at_s = now_s
