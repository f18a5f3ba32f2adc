"""The worker Deployment a JobQueue owns, built from its spec (pure, no I/O).

The pods run ``jobqueue worker APP_REF`` configured by environment (docs/internals.md),
probe the worker's ``/healthz`` and ``/readyz`` on port 8081, get ``POD_NAME`` from the
downward API (it names their Redis consumer, which is how dead consumers are found),
mount no ServiceAccount token unless the pod template names a ServiceAccount, and run
restricted: non-root, read-only root filesystem, no capabilities, no privilege
escalation, the runtime's seccomp profile. The pod template merge and its conflicts:
`jobqueue.operator.worker_pod`. The objects are the official client's typed (pydantic)
models, dumped by their API field names without nulls for the API server.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import (
    V1Deployment,
    V1DeploymentSpec,
    V1DeploymentStrategy,
    V1LabelSelector,
    V1ObjectMeta,
    V1OwnerReference,
    V1RollingUpdateDeployment,
)
from pydantic import BaseModel

from jobqueue.operator.spec import API_VERSION, KIND, JobQueueSpec
from jobqueue.operator.worker_container import WORKER_CONTAINER, WORKER_HTTP_PORT
from jobqueue.operator.worker_pod import selector_labels, worker_labels, worker_pod

__all__ = [
    "WORKER_CONTAINER",
    "WORKER_HTTP_PORT",
    "build_deployment",
    "deployment_name",
    "owner_reference",
    "selector_labels",
    "to_body",
    "worker_env",
    "worker_labels",
]


def deployment_name(jobqueue: str) -> str:
    """Name of the worker Deployment of the JobQueue ``jobqueue``."""
    return f"{jobqueue}-worker"


def owner_reference(jobqueue: str, uid: str) -> V1OwnerReference:
    """Makes an owned object garbage-collected with its JobQueue."""
    return V1OwnerReference(
        api_version=API_VERSION,
        kind=KIND,
        name=jobqueue,
        uid=uid,
        controller=True,
        block_owner_deletion=True,
    )


def to_body(model: BaseModel) -> dict[str, Any]:
    """A typed model as the JSON body the API server takes (camelCase, no nulls)."""
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def worker_env(spec: JobQueueSpec) -> list[dict[str, Any]]:
    """The worker container's environment as merged into the pod (see `worker_pod`)."""
    template = worker_pod("env", spec).template
    assert template.spec is not None
    return [to_body(item) for item in template.spec.containers[0].env or []]


def build_deployment(
    jobqueue: str, namespace: str, uid: str, spec: JobQueueSpec, replicas: int
) -> dict[str, Any]:
    """The whole Deployment object for creation or server-side apply."""
    deployment = V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=V1ObjectMeta(
            name=deployment_name(jobqueue),
            namespace=namespace,
            labels=worker_labels(jobqueue),
            owner_references=[owner_reference(jobqueue, uid)],
        ),
        spec=V1DeploymentSpec(
            replicas=replicas,
            selector=V1LabelSelector(match_labels=selector_labels(jobqueue)),
            # Surge, never take a pod away before its replacement: a draining pod keeps
            # its in-flight jobs until the grace period ends.
            strategy=V1DeploymentStrategy(
                type="RollingUpdate",
                rolling_update=V1RollingUpdateDeployment(max_surge="25%", max_unavailable=0),
            ),
            template=worker_pod(jobqueue, spec).template,
        ),
    )
    return to_body(deployment)
