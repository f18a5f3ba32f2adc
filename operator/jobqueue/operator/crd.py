"""The JobQueue CustomResourceDefinition, generated from the spec model (one source of truth).

`crd_manifest` turns the pydantic models of `jobqueue.operator.spec` into a structural
OpenAPI v3 schema: references inlined, ``Optional`` unwrapped, JSON-Schema-2020 bounds
rewritten in the OpenAPI 3.0 dialect Kubernetes speaks, defaults (factories included)
kept so the API server fills them in, and the models' cross-field rules as CEL
``x-kubernetes-validations``. ``scripts/gen-crd`` writes it; a test fails when the
committed YAML differs from what this module generates.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from jobqueue.operator.spec import (
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    JobQueueSpec,
)

CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_FILENAME = f"{GROUP}_{PLURAL}.yaml"
DROPPED_KEYS = frozenset({"title", "additionalProperties", "$defs"})


class _WithFactoryDefaults(GenerateJsonSchema):
    """JSON schema generation that also renders ``default_factory`` defaults."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return schema.get("default", NoDefault)


def spec_schema() -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``spec``."""
    raw = JobQueueSpec.model_json_schema(by_alias=True, schema_generator=_WithFactoryDefaults)
    schema: dict[str, Any] = _structural(raw, raw.get("$defs", {}))
    return schema


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = _inline(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED_KEYS or (key == "default" and value is None):
            continue
        if key == "default" and isinstance(value, dict) and "properties" in node:
            # Nested defaults apply inside a defaulted ``{}``: no need to repeat them.
            out[key] = {}
        elif key == "description":
            out[key] = value.replace("``", "`")
        elif key == "properties":
            out[key] = {name: _structural(prop, defs) for name, prop in value.items()}
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            # JSON Schema 2020 numbers become OpenAPI 3.0's bound + boolean flag.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = _structural(value, defs)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = _structural(extra, defs)
    return out


def _inline(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Resolve ``$ref`` and unwrap ``anyOf: [X, null]`` into X, keeping the outer keys."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _inline(merged, defs)
    options = node.get("anyOf")
    if options is not None:
        kept = [option for option in options if option.get("type") != "null"]
        if len(kept) != 1:
            raise ValueError(f"cannot express a union of {len(kept)} types in a CRD: {node}")
        merged = {**_inline(kept[0], defs), **{k: v for k, v in node.items() if k != "anyOf"}}
        return _inline(merged, defs)
    return node


def status_schema() -> dict[str, Any]:
    """The schema of ``status``: what the operator writes (Kopf keeps its own keys too)."""
    integer = {"type": "integer"}
    number = {"type": "number"}
    text = {"type": "string"}
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": text,
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": text,
            "message": text,
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": integer,
        },
    }
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "lag": {**integer, "description": "Jobs waiting, never delivered."},
            "lagSource": {**text, "description": "How lag was derived (see backlog.py)."},
            "pending": {**integer, "description": "Jobs delivered, not yet acknowledged."},
            "delayed": {**integer, "description": "Delayed jobs and retries in backoff."},
            "deadLetters": {**integer, "description": "Entries in the dead-letter stream."},
            "laneMode": {
                **text,
                "description": "How workers serve the lanes: Strict or Weighted (with lanes).",
            },
            "lanes": {
                "type": "array",
                "description": "Per priority lane, highest first: lag and pending summed above"
                " (then undeclared lanes that still hold jobs, orphaned).",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": text,
                        "stream": text,
                        "lag": {**integer, "description": "Jobs waiting in the lane."},
                        "pending": {**integer, "description": "Delivered, not acknowledged."},
                        "weight": {
                            **integer,
                            "description": "Weighted mode: the lane's weight in effect.",
                        },
                        "orphaned": {
                            "type": "boolean",
                            "description": "No longer in spec.lanes: no worker reads it.",
                        },
                    },
                },
            },
            "arrivalRate": {**number, "description": "Jobs added per second."},
            "completionRate": {**number, "description": "Jobs finished per second."},
            "replicas": {**integer, "description": "Worker replicas asked of the Deployment."},
            "desiredReplicas": {**integer, "description": "What the policy recommends."},
            "lastScaleTime": {"type": "string", "format": "date-time"},
            "lastScaleReason": text,
            "deployment": text,
            "schedules": {
                "type": "array",
                "description": "Cron schedules: the next tick, and the last one fired.",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": text,
                        "nextFireTime": {"type": "string", "format": "date-time"},
                        "lastFireTime": {"type": "string", "format": "date-time"},
                        "lastJobId": text,
                    },
                },
            },
            "limits": {
                "type": "array",
                "description": "Per limited job type: use now against its limits.",
                "items": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": text,
                        "running": {**integer, "description": "Jobs holding a lease."},
                        "concurrency": {**integer, "description": "Most running at once."},
                        "ratePerSecond": {**number, "description": "Most started per second."},
                        "bookedAheadSeconds": {
                            **number,
                            "description": "How far ahead starts are given out.",
                        },
                        "waitingForRate": {
                            **integer,
                            "description": "Jobs delayed until their reserved start.",
                        },
                    },
                },
            },
            "partitionCount": {
                **integer,
                "description": "Partitions the queue was created with (the workers use these).",
            },
            "partitions": {
                "type": "array",
                "description": "A partitioned queue's counts per partition (the totals above"
                " are their sums).",
                "items": {
                    "type": "object",
                    "required": ["partition"],
                    "properties": {
                        "partition": integer,
                        "stream": text,
                        "length": integer,
                        "lag": integer,
                        "pending": integer,
                        "delayed": integer,
                        "deadLetters": integer,
                    },
                },
            },
            "observedGeneration": integer,
            "conditions": {
                "type": "array",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        },
    }


READY = '.status.conditions[?(@.type=="Ready")].status'
PRINTER_COLUMNS = [
    {"name": "Lag", "type": "integer", "jsonPath": ".status.lag"},
    {"name": "Pending", "type": "integer", "jsonPath": ".status.pending"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
    {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
    {"name": "Rate", "type": "number", "jsonPath": ".status.arrivalRate",
     "description": "Jobs added per second"},
    {"name": "Ready", "type": "string", "jsonPath": READY},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]  # fmt: skip


def crd_manifest() -> dict[str, Any]:
    """The whole CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/part-of": "jobqueue"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A Redis Streams job queue and its autoscaled workers.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


class _PlainDumper(yaml.SafeDumper):
    """Writes a schema used twice out in full: no ``&id001``/``*id001`` anchors that a
    reader of the CRD (or a tool without alias support) would have to resolve."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def crd_yaml() -> str:
    """The CRD as the YAML ``scripts/gen-crd`` commits (stable key order)."""
    header = "# Generated by scripts/gen-crd from jobqueue.operator.spec: do not edit.\n"
    body = yaml.dump(crd_manifest(), Dumper=_PlainDumper, sort_keys=False, width=100)
    return header + body
