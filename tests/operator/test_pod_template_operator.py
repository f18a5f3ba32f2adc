"""The operator and a JobQueue's pod template, against the Kubernetes API emulator and a real
Redis: the template reaches the worker Deployment, a conflict with an owned field becomes a
condition and a Warning Event, and fixing the template clears it."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
from support.kube_emulator import (
    DEPLOYMENTS,
    JOBQUEUES,
    NAMESPACE,
    KubeEmulator,
    apply,
    eventually,
    jobqueue,
)

from jobqueue.operator.podschema import KUBERNETES_VERSION
from jobqueue.operator.scaler import OperatorContext

TOLERATION = {"key": "batch", "operator": "Exists", "effect": "NoSchedule"}


def pod_spec(kube: KubeEmulator, name: str) -> dict[str, Any] | None:
    deployment = kube.get(DEPLOYMENTS, NAMESPACE, f"{name}-worker")
    return None if deployment is None else dict(deployment["spec"]["template"]["spec"])


def conflict_condition(kube: KubeEmulator, name: str) -> dict[str, Any] | None:
    body = kube.get(JOBQUEUES, NAMESPACE, name) or {}
    for cond in body.get("status", {}).get("conditions", []):
        if cond["type"] == "PodTemplateConflict":
            return dict(cond)
    return None


def warnings(kube: KubeEmulator, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in kube.events(involved=name) if e.get("reason") == reason]


async def test_a_template_places_the_workers_and_a_conflict_is_a_condition_and_an_event(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    # Given a JobQueue whose template tolerates the batch pool, names an identity, and
    # also tries to replace the worker's command and POD_NAME (both the operator's)
    template = {
        "metadata": {"annotations": {"iam.example.com/role": "jobs"}},
        "spec": {
            "serviceAccountName": "jobs-identity",
            "tolerations": [TOLERATION],
            "priorityClassName": "batch-low",
            "containers": [
                {
                    "name": "worker",
                    "command": ["python", "-m", "mine"],
                    "env": [{"name": "POD_NAME", "value": "fixed"}, {"name": "A", "value": "1"}],
                }
            ],
        },
    }
    await apply(kube, jobqueue("placed", redis_url, podTemplate=template))

    # Then the Deployment carries the template, merged with what the operator owns
    pod = await eventually(lambda: pod_spec(kube, "placed"), what="deployment")
    deployment = kube.get(DEPLOYMENTS, NAMESPACE, "placed-worker")
    assert deployment is not None
    kubernetes_validate.validate(
        {k: v for k, v in deployment.items() if k != "status"}, KUBERNETES_VERSION, strict=True
    )
    assert pod["tolerations"] == [TOLERATION]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == (
        "jobs-identity",
        True,
    )
    assert pod["priorityClassName"] == "batch-low"
    [container] = pod["containers"]
    assert "command" not in container
    assert container["args"] == ["worker", "acme.jobs:app"]
    env = {e["name"]: e for e in container["env"]}
    assert env["A"]["value"] == "1"
    assert "valueFrom" in env["POD_NAME"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"iam.example.com/role": "jobs"}

    # And the status and an Event name the two ignored fields
    cond = await eventually(lambda: conflict_condition(kube, "placed"), what="condition")
    assert (cond["status"], cond["reason"]) == ("True", "OwnedFieldsSet")
    assert "containers[worker].command" in cond["message"]
    assert "containers[worker].env[POD_NAME]" in cond["message"]
    [event] = await eventually(
        lambda: warnings(kube, "placed", "PodTemplateConflict"), what="Warning Event"
    )
    assert event["type"] == "Warning"
    assert "command" in event["message"]

    # When the user drops the owned fields, the condition clears
    fixed = {**template, "spec": {**template["spec"], "containers": [{"name": "worker"}]}}
    await kube.patch_spec(JOBQUEUES, NAMESPACE, "placed", {"podTemplate": fixed})
    cleared = await eventually(
        lambda: (c := conflict_condition(kube, "placed")) and c["status"] == "False" and c,
        what="condition cleared",
    )
    assert cleared["reason"] == "Merged"
    assert len(warnings(kube, "placed", "PodTemplateConflict")) == 1


async def test_a_queue_without_a_template_reports_no_conflict(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    await apply(kube, jobqueue("plain", redis_url))
    cond = await eventually(lambda: conflict_condition(kube, "plain"), what="condition")
    assert (cond["status"], cond["reason"]) == ("False", "Merged")
    pod = pod_spec(kube, "plain")
    assert pod is not None
    assert pod["automountServiceAccountToken"] is False


async def test_the_worker_deployment_is_created_by_server_side_apply(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    # A Deployment created by POST has its fields owned by an "Update" manager, which a
    # later apply never removes: a toleration dropped from the template would stay.
    await apply(kube, jobqueue("applied", redis_url))
    await eventually(lambda: pod_spec(kube, "applied"), what="deployment")
    writes = [
        r
        for r in kube.requests
        if r.resource is not None
        and r.resource.plural == "deployments"
        and r.action is not None
        and r.action.name in ("CREATE", "UPDATE")
    ]
    assert writes
    assert not [r for r in writes if r.action is not None and r.action.name == "CREATE"]
    first = writes[0]
    assert "apply-patch" in str(first.headers.get("Content-Type"))
    assert dict(first.params)["fieldManager"] == "jobqueue-operator"
