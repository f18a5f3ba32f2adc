"""The optional PodDisruptionBudget of a JobQueue's workers: built from the spec, kept in step.

With ``spec.disruptionBudget`` set, a node drain (or any voluntary eviction) may take only
so many worker pods at once; the rest keep running their jobs, and an evicted pod still
gets its grace period to finish in-flight work. Unhealthy pods (not ready, e.g. crash
looping) may always be evicted, so a broken worker never blocks a drain. The budget is
owned by the JobQueue (garbage-collected with it) and deleted when the field is removed.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import (
    V1LabelSelector,
    V1ObjectMeta,
    V1PodDisruptionBudget,
    V1PodDisruptionBudgetSpec,
)

from jobqueue.operator.deployment import owner_reference, to_body
from jobqueue.operator.kube import KubeApi
from jobqueue.operator.spec import JobQueueSpec
from jobqueue.operator.worker_pod import selector_labels, worker_labels


def budget_name(jobqueue: str) -> str:
    """Name of the worker PodDisruptionBudget of the JobQueue ``jobqueue``."""
    return f"{jobqueue}-worker"


def build_budget(jobqueue: str, namespace: str, uid: str, spec: JobQueueSpec) -> dict[str, Any]:
    """The PodDisruptionBudget object; the spec must carry ``disruptionBudget``."""
    budget = spec.disruption_budget
    if budget is None:
        raise ValueError("the spec has no disruptionBudget")
    pdb = V1PodDisruptionBudget(
        api_version="policy/v1",
        kind="PodDisruptionBudget",
        metadata=V1ObjectMeta(
            name=budget_name(jobqueue),
            namespace=namespace,
            labels=worker_labels(jobqueue),
            owner_references=[owner_reference(jobqueue, uid)],
        ),
        spec=V1PodDisruptionBudgetSpec(
            selector=V1LabelSelector(match_labels=selector_labels(jobqueue)),
            min_available=budget.min_available,
            max_unavailable=budget.max_unavailable,
            unhealthy_pod_eviction_policy="AlwaysAllow",
        ),
    )
    return to_body(pdb)


async def ensure_budget(
    api: KubeApi, jobqueue: str, namespace: str, uid: str, spec: JobQueueSpec
) -> str | None:
    """Create, update or delete the budget to match the spec; what was done, if anything."""
    name = budget_name(jobqueue)
    existing = await api.get_pdb(namespace, name)
    if spec.disruption_budget is None:
        # Only a budget of ours goes: one of that name made by someone else stays.
        owners = (existing or {}).get("metadata", {}).get("ownerReferences") or []
        if any(o.get("uid") == uid for o in owners) and await api.delete_pdb(namespace, name):
            return "deleted"
        return None
    body = build_budget(jobqueue, namespace, uid, spec)
    if existing is None:
        await api.create_pdb(namespace, body)
        return "created"
    # minAvailable and maxUnavailable exclude each other: the one not given is removed.
    body["spec"] = {"minAvailable": None, "maxUnavailable": None, **body["spec"]}
    await api.patch_pdb(namespace, body)
    return None
