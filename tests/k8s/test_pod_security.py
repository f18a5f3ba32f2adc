"""Every pod we ship meets Pod Security "restricted" and jobqueue's own rules."""

from __future__ import annotations

import copy

import pytest
from k8s.objects import (
    Obj,
    all_on_values,
    kustomize_build,
    kustomize_dirs,
    pod_templates,
    render_chart,
)
from k8s.pod_security import house_violations, restricted_violations

# Only the operator talks to the Kubernetes API; every other pod leaves the token out.
API_CLIENTS = ("operator",)


def _shipped_pods() -> list[tuple[str, Obj]]:
    pods = []
    for directory in kustomize_dirs():
        pods.extend(
            (f"manifests/{directory.name}: {name}", spec)
            for name, spec in pod_templates(kustomize_build(directory))
        )
    renders = {
        "default": None,
        "all-on": all_on_values(),
        "producer": {"producer": {"enabled": True}},
    }
    for label, values in renders.items():
        pods.extend(
            (f"chart {label}: {name}", spec) for name, spec in pod_templates(render_chart(values))
        )
    return pods


SHIPPED_PODS = _shipped_pods()


def test_every_component_has_a_pod_under_check() -> None:
    names = " ".join(name for name, _ in SHIPPED_PODS)
    for component in ("operator", "producer", "test", "redis"):
        assert component in names


@pytest.mark.parametrize(("name", "pod"), SHIPPED_PODS, ids=[name for name, _ in SHIPPED_PODS])
def test_pod_meets_the_restricted_profile(name: str, pod: Obj) -> None:
    assert restricted_violations(pod) == []


@pytest.mark.parametrize(("name", "pod"), SHIPPED_PODS, ids=[name for name, _ in SHIPPED_PODS])
def test_pod_meets_the_house_rules(name: str, pod: Obj) -> None:
    api_client = any(component in name for component in API_CLIENTS)
    assert house_violations(pod, mounts_api_token=api_client) == []


SECURE_POD: Obj = {
    "automountServiceAccountToken": False,
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "app",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            },
            "resources": {
                "requests": {"cpu": "10m", "memory": "16Mi"},
                "limits": {"cpu": "1", "memory": "64Mi"},
            },
            "livenessProbe": {"tcpSocket": {"port": 80}},
            "readinessProbe": {"tcpSocket": {"port": 80}},
        }
    ],
    "volumes": [{"name": "tmp", "emptyDir": {}}],
}


def test_the_checks_accept_a_minimal_secure_pod() -> None:
    assert restricted_violations(SECURE_POD) == []
    assert house_violations(SECURE_POD, mounts_api_token=False) == []


def _insecure(change: str) -> Obj:
    pod = copy.deepcopy(SECURE_POD)
    container = pod["containers"][0]
    context = container["securityContext"]
    match change:
        case "hostPath":
            pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
        case "hostNetwork":
            pod["hostNetwork"] = True
        case "privileged":
            context["privileged"] = True
        case "escalation":
            del context["allowPrivilegeEscalation"]
        case "root":
            pod["securityContext"]["runAsNonRoot"] = False
        case "uid0":
            context["runAsUser"] = 0
        case "unconfined":
            pod["securityContext"]["seccompProfile"]["type"] = "Unconfined"
        case "caps":
            context["capabilities"]["add"] = ["SYS_ADMIN"]
        case "keep-caps":
            context["capabilities"]["drop"] = ["NET_RAW"]
        case "hostPort":
            container["ports"] = [{"containerPort": 80, "hostPort": 80}]
        case "sysctl":
            pod["securityContext"]["sysctls"] = [{"name": "kernel.msgmax", "value": "1"}]
        case "init-root":
            pod["initContainers"] = [{**copy.deepcopy(container), "name": "init"}]
            pod["initContainers"][0]["securityContext"]["runAsNonRoot"] = False
    return pod


@pytest.mark.parametrize(
    "change",
    [
        "hostPath",
        "hostNetwork",
        "privileged",
        "escalation",
        "root",
        "uid0",
        "unconfined",
        "caps",
        "keep-caps",
        "hostPort",
        "sysctl",
        "init-root",
    ],
)
def test_the_restricted_check_catches(change: str) -> None:
    assert len(restricted_violations(_insecure(change))) == 1


def test_the_house_check_catches_writable_roots_missing_limits_probes_and_tokens() -> None:
    pod = copy.deepcopy(SECURE_POD)
    container = pod["containers"][0]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    del container["resources"]["limits"]["memory"]
    del container["readinessProbe"]
    del pod["automountServiceAccountToken"]
    assert len(house_violations(pod, mounts_api_token=False)) == 4
    assert len(house_violations(pod, mounts_api_token=True)) == 3
