"""The worker pod template: the JobQueue's ``podTemplate`` merged with what the operator owns.

Built with the official client's typed models (`kubernetes.client.V1PodTemplateSpec`), pure.
The user's template supplies placement and identity (``serviceAccountName``,
``nodeSelector``, tolerations, affinity, topology spread, priority class, volumes, pull
secrets, labels and annotations); the ``worker`` section's shortcuts (``nodeSelector``,
``imagePullSecrets``, ``podAnnotations``, ``resources``, ``env``) add to it. The operator
owns the selector labels, the grace period (never below the job timeout plus a margin),
the ``tmp`` volume, a restricted pod security context, and the ServiceAccount token mount,
which stays off unless the template names a ServiceAccount. Fields that conflict with
those are dropped and listed in `WorkerPod.conflicts`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes.client import (
    V1Container,
    V1EmptyDirVolumeSource,
    V1LocalObjectReference,
    V1ObjectMeta,
    V1PodSecurityContext,
    V1PodSpec,
    V1PodTemplateSpec,
    V1SeccompProfile,
    V1Volume,
)
from pydantic import ValidationError

from jobqueue.core.errors import ConfigError
from jobqueue.operator.spec import JobQueueSpec
from jobqueue.operator.worker_container import (
    TMP_VOLUME,
    Conflicts,
    stringify_quantities,
    worker_container,
)

RUN_AS_ID = 10001
"""The image's ``jobqueue`` user and group."""
MANAGED_BY = "jobqueue-operator"


@dataclass(frozen=True, slots=True)
class WorkerPod:
    """The merged pod template and the user fields it had to drop."""

    template: V1PodTemplateSpec
    conflicts: tuple[str, ...]


def selector_labels(jobqueue: str) -> dict[str, str]:
    """Labels that select the worker pods of one JobQueue (immutable once created)."""
    return {
        "app.kubernetes.io/name": "jobqueue-worker",
        "app.kubernetes.io/instance": jobqueue,
    }


def worker_labels(jobqueue: str) -> dict[str, str]:
    return {
        **selector_labels(jobqueue),
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/part-of": "jobqueue",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def user_template(spec: JobQueueSpec) -> V1PodTemplateSpec:
    """The spec's ``podTemplate`` as typed models (empty when there is none)."""
    data = stringify_quantities(spec.pod_template or {})
    if "spec" in data:  # the models require the containers the operator supplies
        data["spec"] = {"containers": [], **data["spec"]}
    try:
        template = V1PodTemplateSpec.from_dict(data)
    except ValidationError as exc:  # the schema let through what the models refuse
        raise ConfigError(f"podTemplate: {exc.errors()[0]['msg']}") from None
    return template or V1PodTemplateSpec()


def worker_pod(jobqueue: str, spec: JobQueueSpec) -> WorkerPod:
    """The worker pods' template for the JobQueue named ``jobqueue``."""
    user = user_template(spec)
    pod = user.spec or V1PodSpec(containers=[])
    meta = user.metadata or V1ObjectMeta()
    conflicts = Conflicts()
    given = (pod.containers or [V1Container(name="worker")])[0]
    container = worker_container(spec, given, conflicts)
    merged = pod.model_copy(
        update={
            "containers": [container],
            "automount_service_account_token": _token_mount(pod, conflicts),
            "termination_grace_period_seconds": _grace_period_s(spec, pod, conflicts),
            "security_context": _pod_security(pod.security_context, conflicts),
            "image_pull_secrets": _pull_secrets(spec, pod),
            "node_selector": {**(pod.node_selector or {}), **spec.worker.node_selector} or None,
            "volumes": _volumes(pod, conflicts),
        }
    )
    metadata = V1ObjectMeta(
        labels=_labels(jobqueue, meta, conflicts),
        annotations={**(meta.annotations or {}), **spec.worker.pod_annotations} or None,
    )
    return WorkerPod(V1PodTemplateSpec(metadata=metadata, spec=merged), tuple(conflicts))


def _labels(jobqueue: str, meta: V1ObjectMeta, conflicts: Conflicts) -> dict[str, str]:
    own = worker_labels(jobqueue)
    for key, value in (meta.labels or {}).items():
        if key in own and own[key] != value:
            conflicts.owned(f"podTemplate.metadata.labels[{key}]", "selects the worker pods")
    return {**(meta.labels or {}), **own}


def _token_mount(pod: V1PodSpec, conflicts: Conflicts) -> bool:
    if pod.service_account_name:
        # A named ServiceAccount is there for its identity (IRSA, Workload Identity).
        return pod.automount_service_account_token is not False
    if pod.automount_service_account_token:
        conflicts.owned(
            "podTemplate.spec.automountServiceAccountToken",
            "workers mount no token unless the template names a serviceAccountName",
        )
    return False


def _grace_period_s(spec: JobQueueSpec, pod: V1PodSpec, conflicts: Conflicts) -> int:
    floor = spec.grace_period_s
    given = pod.termination_grace_period_seconds
    if given is not None and given < floor:
        conflicts.owned(
            "podTemplate.spec.terminationGracePeriodSeconds",
            f"below the job timeout plus margin ({floor} s)",
        )
    return max(given or 0, floor)


def _pod_security(user: V1PodSecurityContext | None, conflicts: Conflicts) -> V1PodSecurityContext:
    merged = (user or V1PodSecurityContext()).model_copy()
    where = "podTemplate.spec.securityContext"
    if merged.run_as_non_root is False or merged.run_as_user == 0:
        conflicts.owned(f"{where}.runAsNonRoot", "workers run as non-root")
    if merged.seccomp_profile is not None and merged.seccomp_profile.type == "Unconfined":
        conflicts.owned(f"{where}.seccompProfile", "workers run under RuntimeDefault at least")
        merged.seccomp_profile = None
    merged.run_as_non_root = True
    if not merged.run_as_user:
        merged.run_as_user = RUN_AS_ID
    merged.run_as_group = merged.run_as_group if merged.run_as_group is not None else RUN_AS_ID
    merged.fs_group = merged.fs_group if merged.fs_group is not None else RUN_AS_ID
    merged.seccomp_profile = merged.seccomp_profile or V1SeccompProfile(type="RuntimeDefault")
    return merged


def _pull_secrets(spec: JobQueueSpec, pod: V1PodSpec) -> list[V1LocalObjectReference] | None:
    names = [s.name for s in pod.image_pull_secrets or [] if s.name]
    names += [n for n in spec.worker.image_pull_secrets if n not in names]
    return [V1LocalObjectReference(name=n) for n in names] or None


def _volumes(pod: V1PodSpec, conflicts: Conflicts) -> list[V1Volume]:
    volumes = [V1Volume(name=TMP_VOLUME, empty_dir=V1EmptyDirVolumeSource(size_limit="64Mi"))]
    for volume in pod.volumes or []:
        if volume.name == TMP_VOLUME:
            conflicts.owned("podTemplate.spec.volumes[tmp]", "the operator's scratch volume")
        else:
            volumes.append(volume)
    return volumes
