"""The worker container: the user's fields merged with the ones the operator owns (pure).

The operator owns what makes a pod a jobqueue worker: the arguments (``worker APP_REF``),
the probes on the worker's HTTP port, the queue's environment (``REDIS_URL``,
``JOBQUEUE_*``, ``POD_NAME`` from the downward API, which names the Redis consumer), the
``/tmp`` scratch volume and a restricted security context. The user's pod template (and
the ``worker`` section's shortcuts) supply everything else: image, resources, extra env
and ``envFrom``, volume mounts, ports. A user field that would replace an owned one is
dropped and named in `Conflicts`, which the scaler reports as a condition and an Event.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import (
    V1Capabilities,
    V1Container,
    V1ContainerPort,
    V1EnvVar,
    V1EnvVarSource,
    V1HTTPGetAction,
    V1ObjectFieldSelector,
    V1Probe,
    V1ResourceRequirements,
    V1SeccompProfile,
    V1SecretKeySelector,
    V1SecurityContext,
    V1VolumeMount,
)

from jobqueue.core.errors import ConfigError
from jobqueue.core.limits import to_env as limits_env
from jobqueue.operator.spec import JobQueueSpec

WORKER_CONTAINER = "worker"
WORKER_HTTP_PORT = 8081
STOP_MARGIN_S = 10
"""Seconds between the worker's own drain deadline and the kubelet's SIGKILL."""
TMP_VOLUME = "tmp"
CONTAINER_PATH = "podTemplate.spec.containers[worker]"
OWNED_CONTAINER_FIELDS = {
    "command": "command",
    "args": "args",
    "liveness_probe": "livenessProbe",
    "readiness_probe": "readinessProbe",
    "startup_probe": "startupProbe",
}
"""Container fields only the operator sets (snake_case attribute -> field name)."""


class Conflicts(list[str]):
    """User fields dropped because the operator owns them, one ``where: why`` each."""

    def owned(self, where: str, why: str) -> None:
        self.append(f"{where}: {why}")


def redis_url_env(spec: JobQueueSpec) -> V1EnvVar:
    """``REDIS_URL`` from the spec's URL or Secret reference."""
    ref = spec.redis.secret_ref
    if ref is not None:
        selector = V1SecretKeySelector(name=ref.name, key=ref.key)
        return V1EnvVar(name="REDIS_URL", value_from=V1EnvVarSource(secret_key_ref=selector))
    if spec.redis.url is None:
        raise ConfigError("in a cluster, spec needs redis.url or redis.secretRef")
    return V1EnvVar(name="REDIS_URL", value=spec.redis.url)


def owned_env(spec: JobQueueSpec) -> list[V1EnvVar]:
    """The queue's own environment: its settings, ``REDIS_URL`` and ``POD_NAME``."""
    grace_s = max(int(spec.job_timeout_seconds), spec.grace_period_s - STOP_MARGIN_S)
    own = {
        "JOBQUEUE_STREAM": spec.stream,
        "JOBQUEUE_GROUP": spec.group,
        "JOBQUEUE_PARTITIONS": str(spec.partitions),
        "JOBQUEUE_DEAD_STREAM": spec.dead_letter_stream or "",
        **spec.lane_env,
        "JOBQUEUE_CONCURRENCY": str(spec.worker.concurrency),
        "JOBQUEUE_VISIBILITY_TIMEOUT_S": f"{spec.visibility_timeout_seconds:g}",
        "JOBQUEUE_JOB_TIMEOUT_S": f"{spec.job_timeout_seconds:g}",
        "JOBQUEUE_MAX_ATTEMPTS": str(spec.retry.max_attempts),
        "JOBQUEUE_BACKOFF_BASE_S": f"{spec.retry.backoff.base_seconds:g}",
        "JOBQUEUE_BACKOFF_CAP_S": f"{spec.retry.backoff.cap_seconds:g}",
        "JOBQUEUE_MAX_DELIVERIES": str(spec.max_deliveries),
        "JOBQUEUE_GRACE_PERIOD_S": str(grace_s),
        "JOBQUEUE_WORKER_HTTP_PORT": str(WORKER_HTTP_PORT),
        **limits_env(spec.type_limits),
    }
    pod_name = V1EnvVarSource(field_ref=V1ObjectFieldSelector(field_path="metadata.name"))
    return [
        redis_url_env(spec),
        *(V1EnvVar(name=k, value=v) for k, v in own.items()),
        V1EnvVar(name="POD_NAME", value_from=pod_name),
    ]


def _env(spec: JobQueueSpec, user: V1Container, conflicts: Conflicts) -> list[V1EnvVar]:
    env = owned_env(spec)
    reserved = {item.name for item in env}
    extras = [
        ("worker.env", V1EnvVar.from_dict(e.model_dump(by_alias=True))) for e in spec.worker.env
    ]
    extras += [(f"{CONTAINER_PATH}.env", e) for e in user.env or []]
    for where, extra in extras:
        if extra is None:
            continue
        if extra.name in reserved:
            conflicts.owned(f"{where}[{extra.name}]", "set by the operator from the spec")
            continue
        env.append(extra)
    return env


def _probe(path: str, period_s: int, failures: int) -> V1Probe:
    return V1Probe(
        http_get=V1HTTPGetAction(path=path, port="http"),
        period_seconds=period_s,
        timeout_seconds=2,
        failure_threshold=failures,
    )


def _ports(user: V1Container, conflicts: Conflicts) -> list[V1ContainerPort]:
    own = V1ContainerPort(name="http", container_port=WORKER_HTTP_PORT, protocol="TCP")
    ports = [own]
    for port in user.ports or []:
        if port.name == own.name or port.container_port == own.container_port:
            where = f"{CONTAINER_PATH}.ports[{port.name or port.container_port}]"
            conflicts.owned(where, f"port {WORKER_HTTP_PORT} (http) serves the worker's probes")
        else:
            ports.append(port)
    return ports


def _mounts(user: V1Container, conflicts: Conflicts) -> list[V1VolumeMount]:
    mounts = [V1VolumeMount(name=TMP_VOLUME, mount_path="/tmp")]
    for mount in user.volume_mounts or []:
        if mount.name == TMP_VOLUME or mount.mount_path.rstrip("/") == "/tmp":
            where = f"{CONTAINER_PATH}.volumeMounts[{mount.name}]"
            conflicts.owned(where, "/tmp is the operator's scratch volume")
        else:
            mounts.append(mount)
    return mounts


def security_context(user: V1SecurityContext | None, conflicts: Conflicts) -> V1SecurityContext:
    """Restricted defaults; the user's values stand unless they weaken them."""
    merged = (user or V1SecurityContext()).model_copy()
    where = f"{CONTAINER_PATH}.securityContext"
    seccomp = merged.seccomp_profile.type if merged.seccomp_profile else None
    weakening = {
        "privileged": merged.privileged is True,
        "allowPrivilegeEscalation": merged.allow_privilege_escalation is True,
        "readOnlyRootFilesystem": merged.read_only_root_filesystem is False,
        "runAsNonRoot": merged.run_as_non_root is False,
        "runAsUser": merged.run_as_user == 0,
        "capabilities.add": bool(merged.capabilities and merged.capabilities.add),
        "seccompProfile": seccomp == "Unconfined",
    }
    for field, weak in weakening.items():
        if weak:
            conflicts.owned(f"{where}.{field}", "workers run restricted (non-root, read-only)")
    if merged.run_as_user == 0:
        merged.run_as_user = None
    merged.privileged = None
    merged.allow_privilege_escalation = False
    merged.read_only_root_filesystem = True
    merged.run_as_non_root = True
    merged.capabilities = V1Capabilities(drop=["ALL"])
    if seccomp in (None, "Unconfined"):
        merged.seccomp_profile = V1SeccompProfile(type="RuntimeDefault")
    return merged


def worker_container(spec: JobQueueSpec, user: V1Container, conflicts: Conflicts) -> V1Container:
    """The worker container: ``user`` (the template's, possibly empty) merged with ours."""
    for attribute, field in OWNED_CONTAINER_FIELDS.items():
        if getattr(user, attribute) is not None:
            conflicts.owned(f"{CONTAINER_PATH}.{field}", "the operator runs `jobqueue worker APP`")
    resources = user.resources or V1ResourceRequirements.from_dict(
        spec.worker.resources.model_dump(by_alias=True)
    )
    return V1Container(
        name=WORKER_CONTAINER,
        image=spec.image,
        image_pull_policy=user.image_pull_policy or spec.worker.image_pull_policy,
        args=["worker", spec.worker.app],
        env=_env(spec, user, conflicts),
        env_from=user.env_from,
        ports=_ports(user, conflicts),
        startup_probe=_probe("/healthz", 2, 30),
        liveness_probe=_probe("/healthz", 10, 3),
        readiness_probe=_probe("/readyz", 5, 2),
        resources=resources,
        security_context=security_context(user.security_context, conflicts),
        volume_mounts=_mounts(user, conflicts),
        working_dir=user.working_dir,
    )


def stringify_quantities(node: Any, key: str = "") -> Any:
    """Quantities written as numbers (``cpu: 1``) as the strings the typed models take."""
    if isinstance(node, dict):
        if key in ("limits", "requests"):
            return {k: str(v) for k, v in node.items()}
        return {k: stringify_quantities(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [stringify_quantities(item, key) for item in node]
    if key == "sizeLimit" and isinstance(node, int):
        return str(node)
    return node
