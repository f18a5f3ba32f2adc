"""The pod template: what a user's template gives the worker pods, what the operator keeps,
and how a conflict is named. Every Deployment built is checked against Kubernetes' schema."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from jobqueue.core.errors import ConfigError
from jobqueue.operator.crd import crd_manifest
from jobqueue.operator.deployment import build_deployment
from jobqueue.operator.podschema import KUBERNETES_VERSION
from jobqueue.operator.spec import parse_spec
from jobqueue.operator.worker_pod import worker_pod

BASE: dict[str, Any] = {
    "redis": {"url": "redis://redis:6379/0"},
    "worker": {"image": "ghcr.io/acme/jobs:1.0", "app": "acme.jobs:app"},
}
PLATFORM_TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"team": "payments"}, "annotations": {"istio.io/rev": "stable"}},
    "spec": {
        "serviceAccountName": "jobs-irsa",
        "nodeSelector": {"pool": "batch"},
        "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "emails"}}}],
        "priorityClassName": "batch-low",
        "imagePullSecrets": [{"name": "regcred"}],
        "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
        "containers": [{
            "name": "worker",
            "resources": {"requests": {"cpu": 1, "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
            "env": [{"name": "MODEL_DIR", "value": "/models"}],
            "envFrom": [{"secretRef": {"name": "smtp"}}],
            "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
        }],
    },
}  # fmt: skip


def spec_with(template: dict[str, Any], **extra: Any) -> Any:
    return parse_spec({**BASE, "podTemplate": template, **extra})


def deployment_of(template: dict[str, Any], **extra: Any) -> dict[str, Any]:
    deployment = build_deployment("emails", "team-a", "uid-1", spec_with(template, **extra), 1)
    kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    return deployment


def test_a_platform_template_reaches_the_pods_without_conflicts() -> None:
    deployment = deployment_of(PLATFORM_TEMPLATE)
    template = deployment["spec"]["template"]
    pod = template["spec"]
    [container] = pod["containers"]

    assert template["metadata"]["labels"]["team"] == "payments"
    assert template["metadata"]["labels"]["app.kubernetes.io/instance"] == "emails"
    assert template["metadata"]["annotations"] == {"istio.io/rev": "stable"}
    assert pod["serviceAccountName"] == "jobs-irsa"
    assert pod["automountServiceAccountToken"] is True  # a named identity gets its token
    assert pod["tolerations"] == PLATFORM_TEMPLATE["spec"]["tolerations"]
    assert pod["affinity"] == PLATFORM_TEMPLATE["spec"]["affinity"]
    assert pod["topologySpreadConstraints"][0]["maxSkew"] == 1
    assert (pod["priorityClassName"], pod["nodeSelector"]) == ("batch-low", {"pool": "batch"})
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "models"]
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert container["envFrom"] == [{"secretRef": {"name": "smtp"}}]
    env = {e["name"]: e for e in container["env"]}
    assert env["MODEL_DIR"]["value"] == "/models"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
    # what the operator owns is still its own
    assert container["args"] == ["worker", "acme.jobs:app"]
    assert container["image"] == "ghcr.io/acme/jobs:1.0"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert worker_pod("emails", spec_with(PLATFORM_TEMPLATE)).conflicts == ()


def test_without_a_service_account_no_token_is_mounted_and_asking_for_one_is_a_conflict() -> None:
    plain = deployment_of({"spec": {"nodeSelector": {"pool": "batch"}}})
    assert plain["spec"]["template"]["spec"]["automountServiceAccountToken"] is False

    pod = worker_pod("emails", spec_with({"spec": {"automountServiceAccountToken": True}}))
    assert pod.template.spec is not None
    assert pod.template.spec.automount_service_account_token is False
    assert pod.conflicts == (
        "podTemplate.spec.automountServiceAccountToken: workers mount no token unless "
        "the template names a serviceAccountName",
    )


OWNED = [
    ({"spec": {"containers": [{"name": "worker", "args": ["sh"]}]}}, "containers[worker].args"),
    ({"spec": {"containers": [{"name": "worker", "command": ["sh"]}]}},
     "containers[worker].command"),
    ({"spec": {"containers": [{"name": "worker", "livenessProbe": {"exec": {"command": ["x"]}}}]}},
     "containers[worker].livenessProbe"),
    ({"spec": {"containers": [{"name": "worker", "env": [{"name": "POD_NAME", "value": "x"}]}]}},
     "containers[worker].env[POD_NAME]"),
    ({"spec": {"containers": [{"name": "worker", "env": [{"name": "REDIS_URL", "value": "x"}]}]}},
     "containers[worker].env[REDIS_URL]"),
    ({"spec": {"containers": [{"name": "worker", "securityContext": {"privileged": True}}]}},
     "securityContext.privileged"),
    ({"spec": {"containers": [{"name": "worker",
                               "securityContext": {"readOnlyRootFilesystem": False}}]}},
     "securityContext.readOnlyRootFilesystem"),
    ({"spec": {"containers": [{"name": "worker", "ports": [{"containerPort": 8081}]}]}},
     "ports[8081]"),
    ({"spec": {"securityContext": {"runAsUser": 0}}}, "spec.securityContext.runAsNonRoot"),
    ({"spec": {"terminationGracePeriodSeconds": 5}}, "terminationGracePeriodSeconds"),
    ({"spec": {"volumes": [{"name": "tmp", "emptyDir": {}}]}}, "volumes[tmp]"),
    ({"metadata": {"labels": {"app.kubernetes.io/instance": "other"}}},
     "labels[app.kubernetes.io/instance]"),
]  # fmt: skip


@pytest.mark.parametrize(("template", "where"), OWNED, ids=[w for _, w in OWNED])
def test_a_field_the_operator_owns_is_named_and_the_operators_value_kept(
    template: dict[str, Any], where: str
) -> None:
    spec = spec_with(template)
    [conflict] = worker_pod("emails", spec).conflicts
    assert where in conflict

    deployment = deployment_of(template)
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["worker", "acme.jobs:app"]
    assert "command" not in container
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "privileged" not in container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["terminationGracePeriodSeconds"] >= spec.grace_period_s
    assert [v["name"] for v in pod["volumes"]].count("tmp") == 1
    assert [p["containerPort"] for p in container["ports"]] == [8081]
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_URL"]["value"] == "redis://redis:6379/0"
    assert "value" not in env["POD_NAME"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "emails"


def test_user_security_settings_that_do_not_weaken_the_defaults_are_kept() -> None:
    template = {
        "spec": {
            "securityContext": {"runAsUser": 20000, "fsGroup": 3000},
            "containers": [{"name": "worker", "securityContext": {"runAsUser": 20000}}],
        }
    }
    assert worker_pod("emails", spec_with(template)).conflicts == ()
    pod = deployment_of(template)["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["fsGroup"]) == (20000, 3000)
    assert pod["containers"][0]["securityContext"]["runAsUser"] == 20000


def test_the_image_may_come_from_the_template_but_not_from_both_places() -> None:
    only_template = {"redis": BASE["redis"], "worker": {"app": "acme.jobs:app"}}
    template = {"spec": {"containers": [{"name": "worker", "image": "ghcr.io/acme/jobs:2.0"}]}}
    spec = parse_spec({**only_template, "podTemplate": template})
    assert (
        deployment_of(template, worker={"app": "acme.jobs:app"})["spec"]["template"]["spec"][
            "containers"
        ][0]["image"]
        == "ghcr.io/acme/jobs:2.0"
    )
    assert spec.image == "ghcr.io/acme/jobs:2.0"
    with pytest.raises(ConfigError, match="differ"):
        spec_with(template)
    with pytest.raises(ConfigError, match=r"worker\.image is required"):
        parse_spec(only_template)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"spec": {"hostNetwork": True}}, "'hostNetwork' was unexpected"),
        ({"spec": {"containers": [{"name": "sidecar"}]}}, r"'sidecar' is not one of \['worker'\]"),
        ({"spec": {"tolerations": [{"key": 1}]}}, "1 is not of type 'string'"),
        ({"spec": {"containers": [{"name": "worker", "resources": {"limits": {"cpu": []}}}]}},
         "limits.cpu"),
        ({"spec": {"containers": [{"name": "worker", "env": [{"value": "x"}]}]}},
         "'name' is a required property"),
    ],
)  # fmt: skip
def test_an_invalid_template_is_refused_by_the_model_and_the_crd_schema_alike(
    template: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        spec_with(template)
    crd = crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema = crd["properties"]["spec"]["properties"]["podTemplate"]
    if "was unexpected" not in message:  # the API server prunes unknown fields (kubectl: strict)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft4Validator(_int_or_string(schema)).validate(template)


def _int_or_string(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _int_or_string(v) for k, v in node.items()}
        if node.get("x-kubernetes-int-or-string"):
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return out
    return node


def test_the_crd_carries_kubernetes_own_documentation_for_the_template() -> None:
    crd = crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    pod_spec = crd["properties"]["spec"]["properties"]["podTemplate"]["properties"]["spec"]
    tolerations = pod_spec["properties"]["tolerations"]
    assert "taint" in tolerations["items"]["description"]
    assert pod_spec["properties"]["affinity"]["properties"]["nodeAffinity"]["type"] == "object"
