"""The JobQueue CRD's CEL rules (``x-kubernetes-validations``), evaluated as the API server does.

No API server runs here (the operator's tests use kmock's emulator, which does not run
CEL), so this module evaluates the rules with cel-python (``celpy``, a real CEL
implementation) under the conventions Kubernetes adds to CEL:

- a rule sits on a schema node and runs once per value at that node: ``self`` is that
  value (under a list's ``items``, each element in turn), and an absent or null value
  runs none of the rules of its node or below;
- the API server applies the schema's defaults before it validates, so a rule sees
  ``tls: false`` or ``lanes: []`` the user never wrote (`with_defaults`);
- values are typed by the schema: a ``type: number`` field is a CEL double even when
  written ``60`` (so ``capSeconds >= baseSeconds`` compares 60 with 0.5), an
  ``x-kubernetes-int-or-string`` one is an int or a string (`to_cel`);
- ``has(self.field)`` is false for an absent field, and reading one is an error;
- a transition rule (one that names ``oldSelf``) runs only on an update, and only where
  the old object had a value at the same place (list items matched by their
  ``x-kubernetes-list-map-keys``; items of other lists have no old value);
- a rule that does not evaluate to true refuses the object with its ``message``; one
  whose evaluation fails refuses it too, with the error (the API server says
  "Invalid value"), so an error is never taken for a pass.

The rules use only standard CEL (``has``, ``size``, ``startsWith``, ``matches``,
``filter``, ``all``, ``type``, comparisons), which celpy has: none of Kubernetes' own
libraries (``isQuantity``, ``url``, ``optional``...) is needed. A rule that used one would
fail to evaluate here, and be reported as refusing every object, not skipped.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "charts" / "jobqueue" / "crds" / "jobqueue.dev_jobqueues.yaml"
"""The CRD Helm installs (manifests/crd/ holds the same file: tests/operator/test_crd.py)."""

Obj = dict[str, Any]


@functools.cache
def jobqueue_schema() -> Obj:
    """The openAPIV3Schema of the JobQueue CRD's served version, from the committed file."""
    crd = yaml.safe_load(CRD_FILE.read_text())
    [version] = crd["spec"]["versions"]
    schema: Obj = version["schema"]["openAPIV3Schema"]
    return schema


@dataclass(frozen=True)
class Rule:
    """One ``x-kubernetes-validations`` entry and where it sits in the schema."""

    path: str
    """Where in the object: ``spec.redis``, ``spec.worker.env[]`` (each item of a list)."""
    rule: str
    message: str

    @property
    def transition(self) -> bool:
        """Whether it compares with the old object (then it runs on updates only)."""
        return re.search(r"\boldSelf\b", self.rule) is not None


def find_rules(schema: Obj | None = None, path: str = "") -> list[Rule]:
    """Every CEL rule of ``schema`` (default: the JobQueue CRD's), with its schema path."""
    schema = jobqueue_schema() if schema is None else schema
    found = [
        Rule(path, entry["rule"], entry["message"])
        for entry in schema.get("x-kubernetes-validations", [])
    ]
    for name, child in schema.get("properties", {}).items():
        found += find_rules(child, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        found += find_rules(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += find_rules(schema["additionalProperties"], f"{path}{{}}")
    return found


def with_defaults(schema: Obj, value: Any) -> Any:
    """``value`` with the schema's defaults filled in, as the API server stores it: an
    absent property with a ``default`` gets it, then defaulting goes on inside it."""
    if isinstance(value, dict):
        filled = dict(value)
        properties = schema.get("properties", {})
        for name, child in properties.items():
            if name not in filled and "default" in child:
                filled[name] = copy.deepcopy(child["default"])
        extra = schema.get("additionalProperties")
        for name, item in filled.items():
            child = properties.get(name, extra if isinstance(extra, dict) else None)
            if child is not None:
                filled[name] = with_defaults(child, item)
        return filled
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [with_defaults(schema["items"], item) for item in value]
    return value


def to_cel(schema: Obj, value: Any) -> celtypes.Value:
    """``value`` as the CEL value Kubernetes binds for a field of this schema."""
    kind = schema.get("type")
    if isinstance(value, dict) and (kind == "object" or "properties" in schema):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        fields: dict[celtypes.Value, celtypes.Value] = {}
        for name, item in value.items():
            child = properties.get(name, extra if isinstance(extra, dict) else None)
            converted = json_to_cel(item) if child is None else to_cel(child, item)
            fields[celtypes.StringType(name)] = converted
        return celtypes.MapType(fields)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return celtypes.ListType([to_cel(schema["items"], item) for item in value])
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return celtypes.DoubleType(float(value))
    return json_to_cel(value)  # int-or-string, strings, integers, booleans, the rest


@functools.cache
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))


@dataclass(frozen=True)
class Refusal:
    """A rule that refused an object: the rule, the field it ran on, and what it said."""

    rule: Rule
    field: str
    """The concrete field, e.g. ``spec.worker.env[0].valueFrom``."""
    message: str
    """The rule's message, or the evaluation error when the rule could not be evaluated."""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def evaluate(rule: Rule, field: str, schema: Obj, value: Any, old: Any) -> Refusal | None:
    """Run one rule with ``self`` = ``value`` (and ``oldSelf`` = ``old``)."""
    activation: dict[str, celtypes.Value] = {"self": to_cel(schema, value)}
    if rule.transition:
        activation["oldSelf"] = to_cel(schema, old)
    try:
        result = _program(rule.rule).evaluate(activation)
    except CELEvalError as error:
        return Refusal(rule, field, f"evaluation error: {error.args[0]}")
    if isinstance(result, CELEvalError):
        return Refusal(rule, field, f"evaluation error: {result.args[0]}")
    if not isinstance(result, celtypes.BoolType):
        return Refusal(rule, field, f"evaluation error: not a bool: {result!r}")
    return None if result else Refusal(rule, field, rule.message)


def _refusals(
    schema: Obj, value: Any, old: Any, path: str, field: str, updating: bool
) -> Iterator[Refusal]:
    if value is None:
        return
    for entry in schema.get("x-kubernetes-validations", []):
        rule = Rule(path, entry["rule"], entry["message"])
        if rule.transition and (not updating or old is None):
            continue  # Kubernetes: a transition rule needs an old value to compare with
        refusal = evaluate(rule, field, schema, value, old)
        if refusal is not None:
            yield refusal
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        old_fields = old if isinstance(old, dict) else {}
        for name, child in properties.items():
            if name in value:
                yield from _refusals(
                    child,
                    value[name],
                    old_fields.get(name),
                    f"{path}.{name}" if path else name,
                    f"{field}.{name}" if field else name,
                    updating,
                )
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _refusals(
                schema["items"],
                item,
                _old_item(schema, item, old),
                f"{path}[]",
                f"{field}[{index}]",
                updating,
            )


def _old_item(schema: Obj, item: Any, old: Any) -> Any:
    """The old list's item this one is an update of: a ``map`` list's item with the same
    keys; nothing for other lists (Kubernetes does not correlate their items)."""
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") != "map" or not keys or not isinstance(old, list):
        return None
    if not isinstance(item, dict):
        return None
    matches = [o for o in old if isinstance(o, dict) and all(o.get(k) == item.get(k) for k in keys)]
    return matches[0] if matches else None


def refusals(spec: Obj, old_spec: Obj | None = None) -> list[Refusal]:
    """What the CRD's CEL rules say about a JobQueue with this ``spec``: created, or
    updated from one with ``old_spec``. Defaults are applied first, as the API server does."""
    schema = jobqueue_schema()
    new = with_defaults(schema, {"spec": spec})
    old = None if old_spec is None else with_defaults(schema, {"spec": old_spec})
    return list(_refusals(schema, new, old, "", "", updating=old_spec is not None))
