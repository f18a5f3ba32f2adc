"""Grafana dashboards: well-formed, and every PromQL expression queries metrics the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from k8s.objects import CHART, MANIFESTS
from prometheus_client import CollectorRegistry

from jobqueue.operator.metrics import OperatorMetrics
from jobqueue.producer.metrics import ProducerMetrics
from jobqueue.worker.metrics import WorkerMetrics

DASHBOARDS = sorted((MANIFESTS / "dashboards").glob("*.json"))
METRIC_NAME = re.compile(r"\b(jobqueue_[a-z0-9_]+)\b")
SERIES_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}


def exported_series(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry exposes on /metrics, whether or not it has samples yet."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SERIES_SUFFIXES[family.type])
    return names


def code_series() -> set[str]:
    """The ``jobqueue_`` series the worker, the producer and the operator define, from
    their registries (the standard process collectors beside them are not ours)."""
    registries = [
        WorkerMetrics().registry,
        ProducerMetrics().registry,
        OperatorMetrics().registry,
    ]
    names = set().union(*(exported_series(registry) for registry in registries))
    return {name for name in names if name.startswith("jobqueue_")}


def targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query, template-variable queries included."""
    found = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found.append((f"variable {variable['name']}", query["query"]))
    return found


def load(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def test_the_three_dashboards_are_there_with_unique_uids() -> None:
    uids = [load(path)["uid"] for path in DASHBOARDS]
    assert sorted(uids) == ["jobqueue-overview", "jobqueue-producer", "jobqueue-workers"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_references_only_metrics_the_code_exports(path: Path) -> None:
    defined = code_series()
    for title, expr in targets(load(path)):
        used = set(METRIC_NAME.findall(expr))
        assert used, f"{path.name} {title}: no jobqueue metric in {expr!r}"
        assert used <= defined, f"{path.name} {title}: unknown {sorted(used - defined)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_is_balanced_and_uses_the_datasource_variable(path: Path) -> None:
    dashboard = load(path)
    for title, expr in targets(dashboard):
        for opening, closing in ("()", "{}", "[]"):
            assert expr.count(opening) == expr.count(closing), f"{title}: {expr}"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["gridPos"]["w"] <= 24


def test_the_dashboards_cover_what_the_issue_asks() -> None:
    used = set()
    for path in DASHBOARDS:
        for _, expr in targets(load(path)):
            used.update(METRIC_NAME.findall(expr))
    # queue overview, worker and producer views: every metric the code defines has a panel
    assert {name for name in code_series() if not name.endswith(("_sum", "_count"))} <= used


def test_the_chart_ships_the_same_dashboards() -> None:
    shipped = {path.name: path.read_text() for path in (CHART / "dashboards").glob("*.json")}
    assert shipped == {path.name: path.read_text() for path in DASHBOARDS}
