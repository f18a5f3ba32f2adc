"""The shipped alert rules and dashboards, read as Prometheus and Grafana would read them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "manifests" / "alerts" / "jobqueue-rules.yaml"
DASHBOARDS = sorted((ROOT / "manifests" / "dashboards").glob("*.json"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
MISSING_BINARY = "{} is not installed: scripts/setup installs it (Debian package prometheus)"

Rule = dict[str, Any]

GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$namespace": ".*",
    "$jobqueue": ".*",
    "$queue": ".*",
    "$type": ".*",
}
"""What Grafana substitutes for the dashboards' variables with "All" selected."""


def alert_rules(groups: list[dict[str, Any]] | None = None) -> list[Rule]:
    """Every alerting rule of the rules file (or of the given groups)."""
    if groups is None:
        groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard panel target, Grafana variables substituted."""
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}", grafana_to_promql(target["expr"])))
    return found


def template_variable_selectors() -> list[tuple[str, str, str]]:
    """(where, label, series selector) of every ``label_values(selector, label)`` variable."""
    found = []
    for path in DASHBOARDS:
        for variable in json.loads(path.read_text())["templating"]["list"]:
            query = variable.get("query")
            if not isinstance(query, dict):
                continue
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query["query"])
            assert match, f"{path.name} variable {variable['name']}: {query['query']}"
            selector, label = match.groups()
            where = f"{path.name}: variable {variable['name']}"
            found.append((where, label, grafana_to_promql(selector)))
    return found


def grafana_to_promql(expr: str) -> str:
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable is left in {expr!r}"
    return expr


def runbook_anchors() -> set[str]:
    """GitHub's anchors of the runbook's second-level headings."""
    headings = re.findall(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.M)
    return {re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") for heading in headings}
