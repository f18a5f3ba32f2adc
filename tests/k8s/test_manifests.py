"""manifests/: every YAML validates, the kustomize bases assemble, the sample is a JobQueue."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from k8s.objects import (
    MANIFESTS,
    Obj,
    is_operator_cluster_role,
    kustomize_build,
    kustomize_dirs,
    load_documents,
    manifest_files,
    name_of,
    render_chart,
    validate_jobqueue,
    validate_k8s,
    validate_object,
)

from jobqueue.local.queue import load_queue
from jobqueue.operator.spec import parse_spec

SAMPLE = MANIFESTS / "samples" / "jobqueue.yaml"
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ClusterKopfPeering",
}


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_every_manifest_validates_against_the_kubernetes_schemas(path: Path) -> None:
    # given one YAML file under manifests/; when each of its objects is validated
    documents = load_documents(path.read_text())
    assert documents, f"{path} holds no object"
    for obj in documents:
        # then it matches the current release's schema (or, a JobQueue, the CRD's)
        assert validate_object(obj), f"{name_of(obj)} has no schema to check it"


def test_strict_validation_rejects_a_misspelt_field() -> None:
    # given the operator StatefulSet with a typo a lenient check would let through
    deployment = load_documents((MANIFESTS / "operator" / "statefulset.yaml").read_text())[0]
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    # then validation names it
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s(broken)


@pytest.mark.parametrize("directory", kustomize_dirs(), ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_kustomize_directories_list_only_existing_namespaced_resources(directory: Path) -> None:
    objects = kustomize_build(directory)
    assert objects
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace") == "jobqueue", name_of(obj)
    names = [name_of(obj) for obj in objects]
    assert len(names) == len(set(names)), "an object is listed twice"


def test_every_manifest_file_is_reachable_from_a_kustomization() -> None:
    listed: set[Path] = set()
    for directory in kustomize_dirs():
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        listed.update((directory / entry).resolve() for entry in kustomization["resources"])
    assert {path.resolve() for path in manifest_files()} <= listed


def test_the_base_installs_namespace_crd_rbac_and_operator(
    manifest_objects: dict[str, list[Obj]],
) -> None:
    kinds = {obj["kind"] for obj in manifest_objects["."]}
    assert {
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "StatefulSet",
        "NetworkPolicy",
        "ClusterKopfPeering",
    } <= kinds
    # and neither a JobQueue (its CRD must be established first) nor a Secret
    assert not kinds & {"JobQueue", "Secret"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("directory", kustomize_dirs(), ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_kubectl_kustomize_builds_the_same_objects(directory: Path) -> None:
    # given kubectl's own kustomize; when it builds the directory
    built = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True
    ).stdout
    # then it yields exactly the objects our reading of the resource lists does
    by_name = {name_of(obj): obj for obj in load_documents(built)}
    assert by_name == {name_of(obj): obj for obj in kustomize_build(directory)}


def test_the_sample_jobqueue_validates_against_the_crd_and_the_spec_model() -> None:
    sample = load_documents(SAMPLE.read_text())[0]
    validate_jobqueue(sample)
    spec = parse_spec(sample["spec"])
    assert spec.worker.app == "jobqueue.worker.demo:app"
    assert spec.redis.secret_ref is not None, "the sample keeps the Redis URL in a Secret"
    # and local mode (`scripts/dev -f manifests/samples/jobqueue.yaml`) runs the same file
    assert load_queue(SAMPLE).spec == spec


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "scaling", "minReplicas"), -1),
        (("spec", "worker", "concurrency"), "ten"),
        (("spec", "worker", "imagePullPolicy"), "Sometimes"),
        (("spec", "unknownField"), True),
    ],
    ids=["negative-min", "string-concurrency", "bad-pull-policy", "unknown-field"],
)
def test_the_crd_schema_rejects_a_broken_sample(path: tuple[str, ...], value: object) -> None:
    sample = load_documents(SAMPLE.read_text())[0]
    target = sample
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate_jobqueue(sample)


def test_the_dev_redis_secret_matches_what_the_sample_references(
    manifest_objects: dict[str, list[Obj]],
) -> None:
    sample = load_documents(SAMPLE.read_text())[0]
    ref = sample["spec"]["redis"]["secretRef"]
    secrets = [obj for obj in manifest_objects["dev"] if obj["kind"] == "Secret"]
    assert [(s["metadata"]["name"], list(s["stringData"])) for s in secrets] == [
        (ref["name"], [ref["key"]])
    ]


def test_manifests_and_chart_grant_the_operator_the_same_rules(
    manifest_objects: dict[str, list[Obj]],
) -> None:
    def rules(objects: list[Obj]) -> list[Obj]:
        (role,) = [obj for obj in objects if is_operator_cluster_role(obj)]
        return sorted(role["rules"], key=repr)

    assert rules(manifest_objects["rbac"]) == rules(render_chart())
