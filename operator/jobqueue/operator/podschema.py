"""The pod template's schema: the real Kubernetes one, vendored, and the check against it.

``spec.podTemplate`` of a JobQueue is a Kubernetes ``PodTemplateSpec``, restricted to the
fields a worker pod may carry (`POD_SPEC_FIELDS`, `CONTAINER_FIELDS`). Its schema is not
written by hand: `vendor_schema` converts the official OpenAPI definitions (as
kubernetes-validate ships them, JSON Schema 2020) into the structural OpenAPI v3 dialect a
CRD speaks, ``scripts/gen-crd`` writes the result to ``podtemplate.schema.json`` beside
this module, and `jobqueue.operator.crd` embeds it. So the API server validates the
template exactly as it validates a Deployment's, and ``kubectl explain
jobqueue.spec.podTemplate`` shows Kubernetes' own documentation.

The same vendored schema checks a template in Python (`template_errors`), for local mode
and the operator, with unknown fields rejected as ``kubectl``'s strict field validation
rejects them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

import jsonschema

KUBERNETES_VERSION = "1.31.0"
"""Kubernetes release whose Pod API the template follows (the oldest we support)."""
SCHEMA_FILE = "podtemplate.schema.json"
CORE = "io.k8s.api.core.v1."
POD_SPEC_FIELDS = (
    "affinity",
    "automountServiceAccountToken",
    "containers",
    "dnsConfig",
    "dnsPolicy",
    "enableServiceLinks",
    "hostAliases",
    "imagePullSecrets",
    "nodeSelector",
    "preemptionPolicy",
    "priorityClassName",
    "runtimeClassName",
    "schedulerName",
    "securityContext",
    "serviceAccountName",
    "terminationGracePeriodSeconds",
    "tolerations",
    "topologySpreadConstraints",
    "volumes",
)
"""PodSpec fields a template may set; host namespaces, ``nodeName``, init and ephemeral
containers and the restart policy are left out (workers run restricted, under a
Deployment)."""
CONTAINER_FIELDS = (
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "env",
    "envFrom",
    "ports",
    "resources",
    "volumeMounts",
    "securityContext",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "workingDir",
)
"""Container fields of the one ``worker`` container; command, args and probes are the
operator's, accepted by the schema so that setting them is reported, not refused."""
METADATA_FIELDS = ("labels", "annotations")
DROPPED = frozenset(
    {
        "$schema",
        "$id",
        "additionalProperties",
        "default",
        "x-kubernetes-group-version-kind",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-list-type",
        "x-kubernetes-map-type",
        "x-kubernetes-patch-merge-key",
        "x-kubernetes-patch-strategy",
        "x-kubernetes-unions",
    }
)
"""Keys of the source that a CRD schema does not take (list and map types need keys a
CRD cannot guarantee; defaults would rewrite what the user wrote)."""
INT_OR_STRING = {"x-kubernetes-int-or-string": True}


def vendor_schema(definitions: Mapping[str, Any]) -> dict[str, Any]:
    """The structural schema of ``spec.podTemplate`` from Kubernetes' ``$defs``."""
    template = {
        "type": "object",
        "description": (
            "Pod template of the worker pods (a Kubernetes PodTemplateSpec): merged with "
            "what the operator owns (command, probes, POD_NAME, security defaults, grace "
            "period); a conflicting field is reported in the PodTemplate condition."
        ),
        "properties": {
            "metadata": _subset(definitions, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                                METADATA_FIELDS),
            "spec": _pod_spec(definitions),
        },
    }  # fmt: skip
    converted: dict[str, Any] = _convert(template, definitions)
    return converted


def _subset(definitions: Mapping[str, Any], name: str, fields: tuple[str, ...]) -> dict[str, Any]:
    source = definitions[name]
    missing = [f for f in fields if f not in source["properties"]]
    if missing:
        raise KeyError(f"{name} has no {missing} in Kubernetes {KUBERNETES_VERSION}")
    return {
        "type": "object",
        "description": source.get("description", ""),
        "properties": {f: source["properties"][f] for f in fields},
        **(
            {"required": r} if (r := [f for f in source.get("required", []) if f in fields]) else {}
        ),
    }


def _pod_spec(definitions: Mapping[str, Any]) -> dict[str, Any]:
    spec = _subset(definitions, CORE + "PodSpec", POD_SPEC_FIELDS)
    spec.pop("required", None)  # the operator supplies the worker container
    container = _subset(definitions, CORE + "Container", CONTAINER_FIELDS)
    container["properties"]["name"] = {
        "type": "string",
        "enum": ["worker"],
        "description": "Always `worker`: the template shapes the one worker container.",
    }
    spec["properties"]["containers"] = {
        "type": "array",
        "maxItems": 1,
        "description": "The worker container's fields (name `worker`), merged with the operator's.",
        "items": container,
    }
    return spec


def _convert(node: Any, definitions: Mapping[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        return _convert({**target, **{k: v for k, v in node.items() if k != "$ref"}}, definitions)
    if "oneOf" in node:  # IntOrString, Quantity: the CRD way of saying "either"
        return {**INT_OR_STRING, **_described(node)}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED:
            continue
        if key == "type" and isinstance(value, list):
            [value] = [t for t in value if t != "null"]
        if key == "properties":
            out[key] = {name: _convert(prop, definitions) for name, prop in value.items()}
        else:
            out[key] = _convert(value, definitions)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = _convert(extra, definitions)
    return out


def _described(node: Mapping[str, Any]) -> dict[str, Any]:
    return {"description": node["description"]} if "description" in node else {}


@functools.cache
def pod_template_schema() -> dict[str, Any]:
    """The vendored schema (see the module doc)."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator() -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(_strict(pod_template_schema()))


def _strict(node: Any) -> Any:
    """The schema with unknown fields refused and int-or-string as JSON Schema says it."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def without_nulls(node: Any) -> Any:
    """``node`` with null values dropped, as the API server prunes them."""
    if isinstance(node, dict):
        return {k: without_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [without_nulls(item) for item in node]
    return node


def template_errors(template: Mapping[str, Any]) -> list[str]:
    """What is wrong with a pod template, one ``path: problem`` a line; empty when valid."""
    errors = sorted(
        _validator().iter_errors(without_nulls(dict(template))), key=lambda e: list(e.path)
    )
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(template)'}: {e.message}" for e in errors
    ]
