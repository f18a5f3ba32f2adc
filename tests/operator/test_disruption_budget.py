"""The optional PodDisruptionBudget of a JobQueue's workers, against the Kubernetes API
emulator and a real Redis: created owned and selecting the workers, updated, and removed
with the field, never touching a budget someone else made."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from support.kube_emulator import (
    DEPLOYMENTS,
    JOBQUEUES,
    NAMESPACE,
    PDBS,
    KubeEmulator,
    apply,
    eventually,
    jobqueue,
)

from jobqueue.core.errors import ConfigError
from jobqueue.operator.podschema import KUBERNETES_VERSION
from jobqueue.operator.scaler import OperatorContext
from jobqueue.operator.spec import parse_spec


def budget(kube: KubeEmulator, name: str) -> dict[str, Any] | None:
    return kube.get(PDBS, NAMESPACE, f"{name}-worker")


def handled(kube: KubeEmulator, name: str) -> bool:
    """Kopf records the spec it handled once every create/update handler succeeded."""
    annotations = (
        (kube.get(JOBQUEUES, NAMESPACE, name) or {}).get("metadata", {}).get("annotations", {})
    )
    return "jobqueue.dev/last-handled-configuration" in annotations


def reasons(kube: KubeEmulator, name: str) -> set[str]:
    return {e.get("reason", "") for e in kube.events(involved=name)}


async def test_a_budget_is_created_updated_and_removed_with_the_field(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    created = await apply(
        kube, jobqueue("drain", redis_url, disruptionBudget={"maxUnavailable": 1})
    )

    pdb = await eventually(lambda: budget(kube, "drain"), what="PodDisruptionBudget")
    kubernetes_validate.validate(
        {k: v for k, v in pdb.items() if k != "status"}, KUBERNETES_VERSION, strict=True
    )
    [owner] = pdb["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("JobQueue", created["metadata"]["uid"])
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    deployment = kube.get(DEPLOYMENTS, NAMESPACE, "drain-worker")
    assert deployment is not None
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    await eventually(lambda: "DisruptionBudgetCreated" in reasons(kube, "drain"), what="event")

    # When the budget changes, the PDB follows
    await kube.patch_spec(
        JOBQUEUES, NAMESPACE, "drain", {"disruptionBudget": {"maxUnavailable": None,
                                                             "minAvailable": "50%"}}
    )  # fmt: skip
    await eventually(
        lambda: (budget(kube, "drain") or {}).get("spec", {}).get("minAvailable") == "50%",
        what="minAvailable 50%",
    )
    assert "maxUnavailable" not in (budget(kube, "drain") or {})["spec"]

    # When the field goes, so does the PDB
    await kube.patch_spec(JOBQUEUES, NAMESPACE, "drain", {"disruptionBudget": None})
    await eventually(lambda: budget(kube, "drain") is None, what="PDB deleted")
    await eventually(lambda: "DisruptionBudgetDeleted" in reasons(kube, "drain"), what="event")


async def test_a_budget_of_that_name_made_by_someone_else_is_left_alone(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    theirs = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "mine-worker"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "other"}}},
    }
    await kube.create(PDBS, NAMESPACE, theirs)
    await apply(kube, jobqueue("mine", redis_url))
    await eventually(lambda: kube.get(DEPLOYMENTS, NAMESPACE, "mine-worker"), what="deployment")
    await eventually(lambda: handled(kube, "mine"), what="the create handler done")
    kept = budget(kube, "mine")
    assert kept is not None
    assert kept["spec"]["minAvailable"] == 2


@pytest.mark.parametrize(
    ("budget_spec", "message"),
    [
        ({}, "exactly one"),
        ({"minAvailable": 1, "maxUnavailable": 1}, "exactly one"),
        ({"maxUnavailable": -1}, "number of pods"),
        ({"minAvailable": "half"}, "percentage"),
    ],
)
def test_a_bad_budget_is_refused(budget_spec: dict[str, Any], message: str) -> None:
    worker = {"image": "x", "app": "a:b"}
    with pytest.raises(ConfigError, match=message):
        parse_spec({"worker": worker, "disruptionBudget": budget_spec})
