"""The CRD is generated from the spec model, committed, valid, and accepts what the model does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from jobqueue.operator import podschema
from jobqueue.operator.crd import CRD_FILENAME, crd_manifest, crd_yaml
from jobqueue.operator.spec import JobQueueSpec

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = [
    ROOT / "manifests" / "crd" / CRD_FILENAME,
    ROOT / "charts/jobqueue/crds" / CRD_FILENAME,
]


def openapi_spec_schema() -> dict[str, Any]:
    version = crd_manifest()["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def validate_spec(spec: dict[str, Any]) -> None:
    # OpenAPI 3.0 schemas are JSON Schema draft 4 in their bounds (boolean exclusiveMinimum).
    jsonschema.Draft4Validator(openapi_spec_schema()).validate(spec)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_crd_matches_the_spec_model(path: Path) -> None:
    assert path.exists(), "run scripts/gen-crd"
    assert path.read_text() == crd_yaml(), f"{path} is stale: run scripts/gen-crd"


def test_generated_crd_spells_every_schema_out_without_yaml_anchors() -> None:
    # A schema node shared in Python (e.g. one {"type": "string"}) must not become
    # &id001/*id001 in the file people read and tools without alias support apply.
    text = crd_yaml()

    assert not re.search(r"[&*]id\d+", text)
    assert yaml.safe_load(text)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "status"
    ]["properties"]["deployment"] == {"type": "string"}


def test_crd_is_a_valid_kubernetes_object() -> None:
    version = kubernetes_validate.latest_version()
    kubernetes_validate.validate(crd_manifest(), version, strict=True)


def test_crd_has_status_subresource_short_name_and_printer_columns() -> None:
    crd = crd_manifest()["spec"]
    version = crd["versions"][0]
    assert crd["names"]["shortNames"] == ["jq"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Lag", "Pending", "Replicas", "Desired", "Rate"} <= columns


def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every schema node under ``node`` (a ``properties`` map is not one: a property may be
    named ``items``, as a ConfigMap volume's is)."""
    children = list(node.get("properties", {}).values())
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            children.append(node[key])
    return [node] + [n for child in children for n in walk(child)]


def test_schema_is_structural_every_node_typed_no_unions_or_refs() -> None:
    for node in walk(openapi_spec_schema()):
        if "properties" in node or "items" in node or "pattern" in node:
            assert "type" in node, node
        assert not {"anyOf", "oneOf", "$ref", "$defs", "title"} & node.keys(), node


def test_minimal_spec_is_accepted_by_schema_and_model() -> None:
    spec = {"worker": {"image": "ghcr.io/acme/jobs:1.0", "app": "acme.jobs:app"}}
    validate_spec(spec)
    assert JobQueueSpec.model_validate(spec).scaling.min_replicas == 0


@pytest.mark.parametrize(
    "spec",
    [
        {"worker": {"image": "x", "app": "no-colon"}},
        {"worker": {"image": "x", "app": "a:b"}, "scaling": {"minReplicas": -1}},
        {"worker": {"image": "x", "app": "a:b"}, "scaling": {"pollIntervalSeconds": 0}},
        {"worker": {"image": "x", "app": "a:b"}, "redis": {"url": "http://nope"}},
        {"worker": {"image": "x", "app": "a:b"}, "jobTimeoutSeconds": 0},
        {"worker": {"image": "x"}},
    ],
)
def test_schema_rejects_what_the_model_rejects(spec: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_spec(spec)
    with pytest.raises(ValueError, match="validation error"):
        JobQueueSpec.model_validate(spec)


def test_unknown_keys_are_an_error_in_the_model() -> None:
    # The API server prunes unknown keys (kubectl's strict field validation rejects them);
    # local mode reads YAML without a server, so the model itself refuses them.
    with pytest.raises(ValueError, match="bogus"):
        JobQueueSpec.model_validate({"worker": {"image": "x", "app": "a:b"}, "bogus": 1})


def test_cross_field_rules_are_in_the_schema_as_cel() -> None:
    rules = [
        v["rule"]
        for n in walk(openapi_spec_schema())
        for v in n.get("x-kubernetes-validations", [])
    ]
    assert "self.minReplicas <= self.maxReplicas" in rules
    assert "!(has(self.url) && has(self.secretRef))" in rules


def test_defaults_of_nested_objects_let_the_api_server_fill_them() -> None:
    props = openapi_spec_schema()["properties"]
    assert props["scaling"]["default"] == {}
    assert props["scaling"]["properties"]["maxReplicas"]["default"] == 10
    assert props["stream"]["default"] == "jobs:work"
    assert props["retentionPolicy"]["enum"] == ["Retain", "Delete"]


def test_committed_yaml_parses_to_the_manifest() -> None:
    assert yaml.safe_load(COMMITTED[0].read_text()) == crd_manifest()


def test_vendored_pod_template_schema_matches_the_kubernetes_definitions() -> None:
    # Regenerated from kubernetes-validate's copy of the official OpenAPI definitions.
    version = podschema.KUBERNETES_VERSION
    source = f"kubernetes-json-schema/v{version}-local-strict/_definitions.json"
    definitions = kubernetes_validate.utils.schema_contents(source, version)["$defs"]
    assert podschema.pod_template_schema() == podschema.vendor_schema(definitions), (
        "operator/jobqueue/operator/podtemplate.schema.json is stale: run scripts/gen-crd"
    )


def test_the_crd_fits_kubectls_last_applied_annotation() -> None:
    # `kubectl apply` (client side) stores the object as JSON in an annotation capped at
    # 256 KiB; a CRD past that needs --server-side, which our install steps do not say.
    compact = json.dumps(crd_manifest(), separators=(",", ":"))
    assert len(compact.encode()) < 262_144
