"""The JobQueue that local mode runs: the operator's spec, read from YAML, as worker flags.

This is local mode's one contact with `jobqueue.operator.spec`: it loads the same YAML
``kubectl apply`` takes and turns the spec into the command line and environment of a
``jobqueue worker`` process, as the operator turns it into a Deployment's pod template.
Fields that only mean something on Kubernetes (image, resources, Secrets) are ignored
and, where a user might expect an effect, reported as warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from jobqueue.core.errors import ConfigError
from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import Lanes
from jobqueue.core.limits import to_env as limits_env
from jobqueue.core.settings import QueueSettings
from jobqueue.operator.spec import JobQueueSpec, load_jobqueue

DEMO_RESOURCE = "demo.yaml"


@dataclass(frozen=True, slots=True)
class LocalQueue:
    """One JobQueue as local mode runs it."""

    name: str
    spec: JobQueueSpec
    source: str
    """Where the YAML came from: a path, or ``built-in demo``."""

    @property
    def keys(self) -> QueueKeys:
        spec = self.spec
        return QueueKeys(spec.stream, spec.group, dead_stream=spec.dead_letter_stream or "")

    @property
    def partition_keys(self) -> list[QueueKeys]:
        """The keys of every partition (one item for a queue of one partition)."""
        return self.settings("redis://localhost").partition_keys

    def settings(self, redis_url: str) -> QueueSettings:
        """The queue as its processes see it, on the Redis at ``redis_url``."""
        spec = self.spec
        return QueueSettings(
            redis_url=redis_url,
            stream=spec.stream,
            group=spec.group,
            dead_stream=self.dead_stream_flag,
            partitions=spec.partitions,
            lanes=spec.queue_lanes,
        )

    @property
    def dead_stream_flag(self) -> str:
        """``--dead-stream`` of the processes: the spec's, else the default one, which a
        partitioned queue must not name (each partition has its own)."""
        if self.spec.dead_letter_stream or self.spec.partitions == 1:
            return self.keys.dead
        return ""

    def partition_flags(self) -> list[str]:
        """``--partitions N`` for a partitioned queue (nothing for one partition)."""
        return ["--partitions", str(self.spec.partitions)] if self.spec.partitions > 1 else []

    @property
    def min_replicas(self) -> int:
        return self.spec.scaling.min_replicas

    @property
    def max_replicas(self) -> int:
        return self.spec.scaling.max_replicas

    @property
    def poll_interval_s(self) -> float:
        return self.spec.scaling.poll_interval_seconds

    @property
    def grace_period_s(self) -> float:
        """Seconds a stopping worker gets to finish its in-flight jobs."""
        return float(self.spec.grace_period_s)

    def worker_argv(self, command: list[str], consumer: str, http_port: int) -> list[str]:
        """The full argv of one worker process (``command`` runs ``jobqueue``).

        The Redis URL is not in it: it goes in ``REDIS_URL``, so a password never shows
        in the process list.
        """
        spec = self.spec
        return [
            *command,
            "worker",
            spec.worker.app,
            "--stream", spec.stream,
            "--group", spec.group,
            *(["--dead-stream", self.dead_stream_flag] if self.dead_stream_flag else []),
            *self.partition_flags(),
            "--concurrency", str(spec.worker.concurrency),
            "--visibility-timeout-s", _number(spec.visibility_timeout_seconds),
            "--grace-period-s", _number(self.grace_period_s),
            "--max-deliveries", str(spec.max_deliveries),
            "--job-timeout-s", _number(spec.job_timeout_seconds),
            "--max-attempts", str(spec.retry.max_attempts),
            "--http-port", str(http_port),
            "--consumer", consumer,
        ]  # fmt: skip

    @property
    def lanes(self) -> Lanes:
        return self.spec.queue_lanes

    def queue_env(self) -> dict[str, str]:
        """What every process of the queue (workers and producer) reads from the
        environment, as the operator passes it to pods: the priority lanes (always set,
        so a ``JOBQUEUE_LANES`` of the shell never overrides the spec)."""
        return {"JOBQUEUE_LANES": self.spec.lanes_text}

    def worker_env(self) -> dict[str, str]:
        """The environment of the worker processes: the queue's (`queue_env`), how the
        lanes are served (mode and weights, set even when empty, as for the lanes), the retry
        backoff (it has no flag), the limits (as the operator passes them to pods) and
        ``worker.env`` entries that carry a value."""
        backoff = self.spec.retry.backoff
        env = {
            **self.queue_env(),
            "JOBQUEUE_BACKOFF_BASE_S": _number(backoff.base_seconds),
            "JOBQUEUE_BACKOFF_CAP_S": _number(backoff.cap_seconds),
            **limits_env(self.spec.type_limits),
        }
        env.update({var.name: var.value for var in self.spec.worker.env if var.value is not None})
        # Last: the spec's lanes win over a worker.env entry, as the operator drops one
        # that names a variable it sets (the mode and weights are the workers' alone).
        env.update(self.spec.lane_env)
        return env

    def warnings(self) -> list[str]:
        """What in the spec local mode cannot honour, one sentence each."""
        notes = [
            f"worker.env {var.name}: valueFrom is resolved on Kubernetes only; not set locally"
            for var in self.spec.worker.env
            if var.value_from is not None
        ]
        if self.spec.pod_template is not None or self.spec.disruption_budget is not None:
            notes.append("podTemplate and disruptionBudget shape pods on Kubernetes only")
        if self.spec.redis.secret_ref is not None:
            notes.append(
                "redis.secretRef is read on Kubernetes only; using REDIS_URL or a private Redis"
            )
        return notes


def _number(value: float) -> str:
    """``30`` rather than ``30.0`` for whole numbers, so int-typed flags accept it too."""
    return str(int(value)) if float(value).is_integer() else str(value)


def load_queue(path: Path | None) -> LocalQueue:
    """The JobQueue in the YAML file ``path``, or the built-in demo when None.

    Raises ConfigError naming the file and what is wrong with it.
    """
    if path is None:
        text = resources.files("jobqueue.local").joinpath(DEMO_RESOURCE).read_text()
        source = "built-in demo"
    else:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        source = str(path)
    try:
        document = load_jobqueue(text)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return LocalQueue(name=document.name, spec=document.spec, source=source)
