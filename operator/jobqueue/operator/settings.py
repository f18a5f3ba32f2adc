"""Settings of the operator process (not of a JobQueue: those live in its spec)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jobqueue.core.settings import env_value, parse_bool

NAMESPACE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_namespaces(names: Iterable[str]) -> tuple[str, ...]:
    """Namespace names as given; ValueError for anything else (a glob such as ``team-*``:
    a namespaced operator serves exactly the namespaces it is told)."""
    found = tuple(names)
    for name in found:
        if len(name) > 63 or not NAMESPACE_NAME.match(name):
            raise ValueError(f"{name!r} is not a namespace name (patterns are not supported)")
    return found


def _names(text: str) -> tuple[str, ...]:
    return check_namespaces(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """How the operator runs.

    Environment: ``JOBQUEUE_OPERATOR_NAMESPACES``, ``JOBQUEUE_OPERATOR_HTTP_PORT``,
    ``JOBQUEUE_OPERATOR_STATUS_INTERVAL_S``, ``JOBQUEUE_OPERATOR_REAP_INTERVAL_S``,
    ``JOBQUEUE_OPERATOR_REAP_MIN_IDLE_S``, ``JOBQUEUE_OPERATOR_PEERING``,
    ``JOBQUEUE_OPERATOR_STANDALONE``, ``JOBQUEUE_OPERATOR_PRIORITY``.
    """

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means the whole cluster."""
    http_port: int = 8080
    """Port of ``/healthz`` and ``/metrics``; 0 turns the server off."""
    status_interval_s: float = 5.0
    """Least seconds between two status writes that only refresh counts (lag, rates);
    replica, condition and generation changes are written at once."""
    deployment_refresh_s: float = 15.0
    """Seconds between two reads of a worker Deployment to notice changes made by others."""
    reap_interval_s: float = 30.0
    """Seconds between two passes removing the consumers of vanished pods."""
    reap_min_idle_s: float = 60.0
    """A consumer active this recently is never removed (its pod may be starting)."""
    peering: str = "jobqueue-operator"
    """Kopf peering object: of several operator replicas only the highest priority acts."""
    standalone: bool = False
    """Run without peering (a single replica, or tests)."""
    priority: int = 0
    """Peering priority of this replica."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if environ is None else environ
        base = cls()
        return cls(
            namespaces=env_value(env, "JOBQUEUE_OPERATOR_NAMESPACES", base.namespaces, _names),
            http_port=env_value(env, "JOBQUEUE_OPERATOR_HTTP_PORT", base.http_port, int),
            status_interval_s=env_value(
                env, "JOBQUEUE_OPERATOR_STATUS_INTERVAL_S", base.status_interval_s, float
            ),
            deployment_refresh_s=env_value(
                env, "JOBQUEUE_OPERATOR_DEPLOYMENT_REFRESH_S", base.deployment_refresh_s, float
            ),
            reap_interval_s=env_value(
                env, "JOBQUEUE_OPERATOR_REAP_INTERVAL_S", base.reap_interval_s, float
            ),
            reap_min_idle_s=env_value(
                env, "JOBQUEUE_OPERATOR_REAP_MIN_IDLE_S", base.reap_min_idle_s, float
            ),
            peering=env_value(env, "JOBQUEUE_OPERATOR_PEERING", base.peering, str),
            standalone=env_value(env, "JOBQUEUE_OPERATOR_STANDALONE", base.standalone, parse_bool),
            priority=env_value(env, "JOBQUEUE_OPERATOR_PRIORITY", base.priority, int),
        )
