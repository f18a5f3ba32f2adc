"""The operator's RBAC: what the running operator calls is allowed, and nothing more is granted.

The calls come from the real operator (Kopf and our handlers) driven through a JobQueue's
whole life against a Kubernetes API emulator over HTTP (tests/support/kube_emulator.py)
and a real Redis: create, scale up on a backlog, status writes, a spec change, delete.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from k8s.objects import (
    MANIFESTS,
    Obj,
    all_on_values,
    is_operator_cluster_role,
    kustomize_build,
    render_chart,
)
from k8s.operator_run import add_cluster_peering, running_operator
from support.kube_emulator import (
    DEPLOYMENTS,
    JOBQUEUES,
    NAMESPACE,
    PDBS,
    SECRETS,
    KubeEmulator,
    apply,
    eventually,
    jobqueue,
    start_emulator,
)

from jobqueue.core.client import AsyncClient, NewJob

Call = tuple[str, str, str]
"""(verb, group/version/plural, subresource) as the emulator records it."""

# Granted although a single-replica, emulated run does not exercise them, each with why.
GRANTED_UNOBSERVED: dict[Call, str] = {
    ("list", "apiextensions.k8s.io/v1/customresourcedefinitions", ""): "Kopf scans CRDs",
    ("watch", "apiextensions.k8s.io/v1/customresourcedefinitions", ""): "Kopf scans CRDs",
    ("list", "v1/namespaces", ""): "Kopf's cluster-wide mode follows namespaces",
    ("watch", "v1/namespaces", ""): "Kopf's cluster-wide mode follows namespaces",
    ("create", "apps/v1/deployments", ""): "a server-side apply that creates is also a create",
    ("create", "networking.k8s.io/v1/networkpolicies", ""): "a server-side apply that creates",
}


def grants(role: Obj) -> set[Call]:
    """Every (verb, group/version/plural, subresource) a ClusterRole or Role allows."""
    versions = {
        "": "v1",
        "apps": "v1",
        "policy": "v1",
        "jobqueue.dev": "v1alpha1",
        "kopf.dev": "v1",
        "apiextensions.k8s.io": "v1",
        "events.k8s.io": "v1",
        "networking.k8s.io": "v1",
    }
    found: set[Call] = set()
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                plural, _, sub = resource.partition("/")
                prefix = f"{group}/{versions[group]}".lstrip("/")
                found.update((verb, f"{prefix}/{plural}", sub) for verb in rule["verbs"])
    return found


def cluster_role(objects: list[Obj]) -> Obj:
    (role,) = [obj for obj in objects if is_operator_cluster_role(obj)]
    return role


def _replicas(kube: KubeEmulator, name: str) -> int:
    deployment = kube.get(DEPLOYMENTS, NAMESPACE, f"{name}-worker") or {}
    return int(deployment.get("spec", {}).get("replicas") or 0)


async def _drive_a_jobqueue_lifecycle(kube: KubeEmulator, redis_url: str) -> None:
    name = "rbac"
    encoded = base64.b64encode(redis_url.encode()).decode()
    secret: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis"}}
    await kube.create(SECRETS, NAMESPACE, {**secret, "data": {"url": encoded}})
    body = jobqueue(name, redis_url, networkPolicy={"enabled": True})
    body["spec"]["redis"] = {"secretRef": {"name": "redis", "key": "url"}}
    body["spec"]["disruptionBudget"] = {"maxUnavailable": 1}
    # create: the worker Deployment and its PodDisruptionBudget appear
    await apply(kube, body)
    await eventually(lambda: kube.get(DEPLOYMENTS, NAMESPACE, f"{name}-worker"), 30, "deployment")
    await eventually(lambda: kube.get(PDBS, NAMESPACE, f"{name}-worker"), 30, "budget")
    # a backlog: the operator scales up and writes status
    async with AsyncClient.from_url(redis_url, stream=f"{name}:work") as client:
        await client.enqueue_many([NewJob("noop", {"n": n}) for n in range(40)])
    await eventually(lambda: _replicas(kube, name), 30, "scale up")
    await eventually(
        lambda: (kube.get(JOBQUEUES, NAMESPACE, name) or {}).get("status"), 30, "status"
    )
    policy = "networking.k8s.io/v1/networkpolicies"
    await eventually(lambda: kube.get(policy, NAMESPACE, f"{name}-worker"), 30, "policy")
    # a spec change: the Deployment and the NetworkPolicy are re-applied, the budget patched
    await kube.patch_spec(
        JOBQUEUES,
        NAMESPACE,
        name,
        {"worker": {"concurrency": 3}, "disruptionBudget": {"maxUnavailable": 2}},
    )
    await eventually(
        lambda: "3" in str(kube.get(DEPLOYMENTS, NAMESPACE, f"{name}-worker")), 30, "re-apply"
    )
    await eventually(
        lambda: (
            (kube.get(PDBS, NAMESPACE, f"{name}-worker") or {})
            .get("spec", {})
            .get("maxUnavailable")
            == 2
        ),
        30,
        "budget patched",
    )
    # the budget removed from the spec: it goes
    await kube.patch_spec(JOBQUEUES, NAMESPACE, name, {"disruptionBudget": None})
    await eventually(lambda: kube.get(PDBS, NAMESPACE, f"{name}-worker") is None, 30, "no budget")
    # delete: the Deployment goes
    await kube.delete(JOBQUEUES, NAMESPACE, name)
    await eventually(
        lambda: kube.get(DEPLOYMENTS, NAMESPACE, f"{name}-worker") is None, 30, "deletion"
    )


@pytest.fixture(scope="module")
def operator_calls(redis_server: Any) -> set[Call]:
    """Every API call the operator made over one JobQueue's life (run once per module)."""

    async def record() -> set[Call]:
        async for kube in start_emulator():
            add_cluster_peering(kube)
            async with running_operator(kube):
                await _drive_a_jobqueue_lifecycle(kube, redis_server.url)
            return kube.calls
        raise AssertionError("the emulator did not start")

    return asyncio.run(record())


@pytest.mark.slow
def test_every_call_the_operator_makes_is_granted_by_the_chart(
    operator_calls: set[Call],
) -> None:
    allowed = grants(cluster_role(render_chart()))
    assert operator_calls - allowed == set()


@pytest.mark.slow
def test_every_call_is_granted_by_the_kustomize_rbac(operator_calls: set[Call]) -> None:
    allowed = grants(cluster_role(kustomize_build(MANIFESTS / "rbac")))
    assert operator_calls - allowed == set()


@pytest.mark.slow
def test_the_chart_grants_nothing_the_operator_does_not_use(operator_calls: set[Call]) -> None:
    granted = grants(cluster_role(render_chart()))
    assert granted - operator_calls - set(GRANTED_UNOBSERVED) == set()


@pytest.mark.slow
def test_namespaced_mode_grants_the_same_calls_per_namespace(operator_calls: set[Call]) -> None:
    # a namespaced operator makes the same calls inside each namespace, with Kopf's
    # namespaced peering instead of the cluster one, and never follows namespaces
    expected = {
        (verb, resource.replace("clusterkopfpeerings", "kopfpeerings"), sub)
        for verb, resource, sub in operator_calls
        if resource != "v1/namespaces"
    }
    objects = render_chart(all_on_values())
    roles = [obj for obj in objects if obj["kind"] == "Role"]
    assert roles
    for role in roles:
        allowed = grants(role) | grants(cluster_role(objects))
        assert expected - allowed == set(), role["metadata"]


def test_no_role_grants_wildcards_or_secret_listing() -> None:
    for values in (None, all_on_values()):
        for role in [o for o in render_chart(values) if o["kind"] in ("Role", "ClusterRole")]:
            calls = grants(role)  # asserts no wildcard
            assert not {c for c in calls if c[1] == "v1/secrets" and c[0] != "get"}


WRITES = {"create", "update", "patch", "delete", "deletecollection"}


@pytest.mark.parametrize("source", ["chart", "manifests"])
def test_namespace_users_get_jobqueue_roles_through_the_built_in_ones(source: str) -> None:
    objects = render_chart() if source == "chart" else kustomize_build(MANIFESTS / "rbac")
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole"}
    edit, view = roles["jobqueue-edit"], roles["jobqueue-view"]
    # edit aggregates into admin and edit, view into view (and so into edit and admin too)
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    jobqueues = "jobqueue.dev/v1alpha1/jobqueues"
    assert {(verb, jobqueues, "") for verb in WRITES | {"get", "list", "watch"}} <= grants(edit)
    # the status belongs to the operator: people read it, never write it
    assert not {c for c in grants(edit) if c[2] == "status" and c[0] in WRITES}
    assert grants(view) == {
        (verb, jobqueues, sub) for verb in ("get", "list", "watch") for sub in ("", "status")
    }
    # and nothing beyond JobQueues (no Secrets, no Deployments)
    assert {c[1] for c in grants(edit) | grants(view)} == {jobqueues}


def test_a_second_release_can_leave_the_cluster_wide_roles_out() -> None:
    objects = render_chart({"rbac": {"aggregatedRoles": False}})
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"] == [
        "jq-jobqueue-operator"
    ]
