"""Every pod we ship meets Pod Security "restricted" and jobqueue's own rules."""

from __future__ import annotations

import copy

import pytest
from k8s.objects import (
    MANIFESTS,
    Obj,
    all_on_values,
    kustomize_build,
    kustomize_dirs,
    load_documents,
    pod_templates,
    render_chart,
    validate_k8s,
)
from k8s.pod_security import house_violations, restricted_violations

from jobqueue.cli.main import COMMANDS
from jobqueue.operator.deployment import build_deployment
from jobqueue.operator.spec import parse_spec


def worker_deployment() -> Obj:
    """The worker Deployment the operator creates for the sample JobQueue."""
    sample = load_documents((MANIFESTS / "samples" / "jobqueue.yaml").read_text())[0]
    spec = parse_spec(sample["spec"])
    return build_deployment("demo", "jobqueue", "0000-uid", spec, replicas=2)


def is_api_client(name: str) -> bool:
    """Only the operator talks to the Kubernetes API; every other pod leaves the token out."""
    return name.endswith("-operator")


def _shipped_pods() -> list[tuple[str, Obj]]:
    pods: list[tuple[str, Obj]] = []
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
    pods.extend((f"built by the operator: {n}", s) for n, s in pod_templates([worker_deployment()]))
    return pods


SHIPPED_PODS = _shipped_pods()


def test_every_component_has_a_pod_under_check() -> None:
    names = " ".join(name for name, _ in SHIPPED_PODS)
    for component in ("jobqueue-operator", "producer", "test", "redis", "demo-worker"):
        assert component in names


@pytest.mark.parametrize(("name", "pod"), SHIPPED_PODS, ids=[name for name, _ in SHIPPED_PODS])
def test_pod_meets_the_restricted_profile(name: str, pod: Obj) -> None:
    assert restricted_violations(pod) == []


@pytest.mark.parametrize(("name", "pod"), SHIPPED_PODS, ids=[name for name, _ in SHIPPED_PODS])
def test_pod_meets_the_house_rules(name: str, pod: Obj) -> None:
    assert house_violations(pod, mounts_api_token=is_api_client(name)) == []


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


def test_the_worker_deployment_validates_and_mounts_no_token() -> None:
    deployment = worker_deployment()
    validate_k8s(deployment)
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


@pytest.mark.parametrize("values", [None, "all-on"], ids=["default", "all-on"])
def test_worker_network_policy_and_pod_monitor_select_the_worker_pods(values: str | None) -> None:
    pod_labels = worker_deployment()["spec"]["template"]["metadata"]["labels"]
    ports = {p["containerPort"] for p in worker_deployment_container()["ports"]}
    objects = render_chart(all_on_values() if values else None)
    objects += kustomize_build(MANIFESTS / "operator")
    selectors = [
        (obj["spec"]["podSelector"]["matchLabels"], obj["spec"]["ingress"][0]["ports"])
        for obj in objects
        if obj["kind"] == "NetworkPolicy" and obj["metadata"]["name"].endswith("worker")
    ]
    # the kustomize base's, and the chart's in each namespace whose JobQueues it serves
    watched = all_on_values()["operator"]["watchNamespaces"] if values else ["jobqueue"]
    assert len(selectors) == 1 + len(watched)
    for match, ingress in selectors:
        assert match.items() <= pod_labels.items()
        assert {rule["port"] for rule in ingress} == ports
    for monitor in [obj for obj in objects if obj["kind"] == "PodMonitor"]:
        assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert {e["portNumber"] for e in monitor["spec"]["podMetricsEndpoints"]} == ports


def worker_deployment_container() -> Obj:
    container: Obj = worker_deployment()["spec"]["template"]["spec"]["containers"][0]
    return container


def test_every_jobqueue_container_runs_a_real_subcommand_of_the_image_entrypoint() -> None:
    # the image's ENTRYPOINT is `jobqueue`: pods pass the subcommand as args
    for name, pod in SHIPPED_PODS:
        for container in pod.get("initContainers", []) + pod["containers"]:
            if "jobqueue" not in container["image"] or "redis" in container["image"]:
                continue
            if "command" in container:
                # the helm test script (python -c) and live update's copy (cp -R)
                assert container["command"][:2] in (["python", "-c"], ["cp", "-R"]), name
                continue
            assert container["args"][0] in COMMANDS, f"{name}: {container['args']}"
