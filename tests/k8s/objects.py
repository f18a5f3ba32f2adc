"""The Kubernetes objects this repository ships, loaded the way a cluster would get them.

- `kustomize_build` assembles a kustomize directory by reading its kustomization.yaml
  (plain resource lists, nested directories followed), so no kubectl is needed;
- `render_chart` renders charts/jobqueue with real Helm (helm-python-sdk: Helm's Go SDK);
- `validate_k8s` checks one object against the schemas of a current Kubernetes release;
- `validate_jobqueue` checks a JobQueue against the CRD's own openAPIV3Schema.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
CHART = ROOT / "charts" / "jobqueue"
ALL_ON_VALUES = CHART / "ci" / "all-on-values.yaml"
CRD_FILE = MANIFESTS / "crd" / "jobqueue.dev_jobqueues.yaml"
RELEASE = "jq"
NAMESPACE = "jobqueue"

KUBERNETES_VERSION = kubernetes_validate.latest_version()
"""The newest Kubernetes release whose schemas kubernetes-validate ships."""

Obj = dict[str, Any]

POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def load_documents(text: str) -> list[Obj]:
    """Every non-empty YAML document of a stream.

    Parsed by libyaml (the safe loader's C twin, same results): the pure-Python parser
    spent most of the k8s tests' CPU on the CRD's embedded pod template schema.
    """
    return [doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc]


def kustomize_build(directory: Path) -> list[Obj]:
    """The objects of a kustomize directory, read from its ``resources`` list.

    Only plain resource lists are supported: anything that would transform objects
    (patches, generators, namespace or name rewrites) is an error, so the files in git
    are exactly what applies.
    """
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - {"apiVersion", "kind", "resources"}
    if unsupported:
        raise ValueError(f"{directory}/kustomization.yaml uses {sorted(unsupported)}")
    objects: list[Obj] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects.extend(kustomize_build(path))
        else:
            objects.extend(load_documents(path.read_text()))
    return objects


ALERTS = MANIFESTS / "alerts"
"""Prometheus rule files, not Kubernetes objects: tests/monitoring checks them (promtool)."""


def manifest_files() -> list[Path]:
    """Every Kubernetes YAML file under manifests/ except kustomization files."""
    return sorted(
        path
        for path in MANIFESTS.rglob("*.yaml")
        if path.name != "kustomization.yaml" and path.is_file() and ALERTS not in path.parents
    )


def kustomize_dirs() -> list[Path]:
    """Every directory under manifests/ with a kustomization.yaml."""
    return sorted(path.parent for path in MANIFESTS.rglob("kustomization.yaml"))


@functools.cache
def chart() -> helm.Chart:
    """charts/jobqueue, loaded once per session (charts are immutable)."""
    return helm.Chart.load(CHART)


def all_on_values() -> Obj:
    values: Obj = yaml.safe_load(ALL_ON_VALUES.read_text())
    return values


def render_chart(
    values: Obj | None = None, *, namespace: str = NAMESPACE, release: str = RELEASE
) -> list[Obj]:
    """The objects charts/jobqueue renders for an install with ``values``.

    Schema validation runs first, as ``helm install`` does; NOTES.txt is left out.
    """
    chart().validate_schema(values or {})
    rendered = chart().render(values or {}, name=release, namespace=namespace, is_install=True)
    objects: list[Obj] = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        objects.extend(load_documents(text))
    return objects


def render_notes(values: Obj | None = None) -> str:
    rendered = chart().render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for template, text in rendered.items() if template.endswith("NOTES.txt"))


def crd_objects() -> list[Obj]:
    """The CRDs the chart installs from crds/ (Helm applies them before templates)."""
    return [doc for crd in chart().crds for doc in load_documents(crd["data"])]


def name_of(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    prefix = f"{namespace}/" if namespace else ""
    return f"{obj['kind']}/{prefix}{meta.get('name')}"


def validate_k8s(obj: Obj) -> None:
    """Validate against the current Kubernetes release's schemas, unknown fields rejected."""
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def _closed(schema: Obj) -> Obj:
    """``schema`` with unknown fields rejected, as the API server's strict field validation
    (kubectl's default) does; ``x-kubernetes-preserve-unknown-fields`` keeps a node open."""
    closed = dict(schema)
    if "properties" in closed:
        closed["properties"] = {k: _closed(v) for k, v in closed["properties"].items()}
        if not closed.get("x-kubernetes-preserve-unknown-fields"):
            closed.setdefault("additionalProperties", False)
    if isinstance(closed.get("items"), dict):
        closed["items"] = _closed(closed["items"])
    if isinstance(closed.get("additionalProperties"), dict):
        closed["additionalProperties"] = _closed(closed["additionalProperties"])
    return closed


ROOT_FIELDS: Obj = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
}


@functools.cache
def custom_schemas() -> dict[tuple[str, str], Obj]:
    """(apiVersion, kind) -> closed openAPIV3Schema of every CRD the chart ships."""
    schemas = {}
    for crd in crd_objects():
        spec = crd["spec"]
        for version in spec["versions"]:
            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            schema = _closed(version["schema"]["openAPIV3Schema"])
            # the API server accepts these at the root of every object, listed or not
            schema["properties"] = {**ROOT_FIELDS, **schema["properties"]}
            schemas[key] = schema
    return schemas


def jobqueue_schema() -> Obj:
    """The openAPIV3Schema of the JobQueue CRD (served version v1alpha1), closed."""
    return custom_schemas()[("jobqueue.dev/v1alpha1", "JobQueue")]


def validate_jobqueue(obj: Obj) -> None:
    """Validate a JobQueue against the CRD's structural schema.

    The CRD's CEL rules (x-kubernetes-validations) are not run here: `k8s.crd_cel`
    evaluates them (tests/k8s/test_crd_cel_rules.py), and the spec model's own validation
    (`jobqueue.operator.spec.parse_spec`) checks the same.
    """
    validate_custom(obj)


def validate_custom(obj: Obj) -> None:
    """Validate an object of one of our CRDs against its schema (OpenAPI v3.0 is draft 4's
    dialect: boolean exclusiveMinimum and friends)."""
    schema = custom_schemas()[(obj["apiVersion"], obj["kind"])]
    jsonschema.Draft4Validator(schema).validate(obj)


NOT_OURS = {
    "ServiceMonitor": "monitoring.coreos.com is the Prometheus Operator's CRD, not shipped here",
    "PodMonitor": "monitoring.coreos.com is the Prometheus Operator's CRD, not shipped here",
    "PrometheusRule": "monitoring.coreos.com is the Prometheus Operator's CRD, not shipped here"
    " (tests/monitoring checks its rules with promtool)",
}
"""Kinds validated by nobody here, with the reason (logged when skipped)."""


def validate_object(obj: Obj) -> bool:
    """Validate ``obj`` by the schema that owns its kind; False when none here does."""
    if (obj["apiVersion"], obj["kind"]) in custom_schemas():
        validate_custom(obj)
    elif obj["kind"] in NOT_OURS:
        log.warning("not validated: %s (%s)", name_of(obj), NOT_OURS[obj["kind"]])
        return False
    else:
        validate_k8s(obj)
    return True


def is_operator_cluster_role(obj: Obj) -> bool:
    """The operator's ClusterRole (the aggregated roles for people are others)."""
    labels = obj["metadata"].get("labels") or {}
    return obj["kind"] == "ClusterRole" and labels.get("app.kubernetes.io/component") == "operator"


def pod_templates(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    """(name, pod spec) of every pod the objects would create, hooks included."""
    for obj in objects:
        kind = obj.get("kind")
        if kind == "Pod":
            yield name_of(obj), obj["spec"]
        elif kind in POD_TEMPLATE_KINDS:
            yield name_of(obj), obj["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield name_of(obj), obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
