"""The alert rules: promtool accepts them and its unit tests pass, the chart's PrometheusRule
carries the same rules, and every alert has a runbook section."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from k8s.objects import all_on_values, render_chart
from k8s.test_dashboards import code_series
from monitoring.rules import (
    MISSING_BINARY,
    PROMTOOL,
    RULES_FILE,
    RUNBOOKS,
    alert_rules,
    runbook_anchors,
)

from jobqueue.core.redis_errors import KINDS
from jobqueue.operator.deployment import worker_labels

UNIT_TESTS = Path(__file__).parent / "promtool" / "jobqueue-rules.test.yaml"
ASKED_FOR = {
    "JobQueueBacklogGrowing",
    "JobQueueOldestJobTooOld",
    "JobQueueLagWithNoReadyWorkers",
    "JobQueueDeadLettersRising",
    "JobQueueWorkersCrashLooping",
    "JobQueueWorkersNotReady",
    "JobQueueOperatorDown",
    "JobQueueOperatorNotReconciling",
    "JobQueueRedisUnreachable",
    "JobQueueScalingPinnedAtMax",
}
"""Issue 13's list: backlog, oldest job, lag without ready workers, dead letters, crash
loops and unready workers, the operator down or stalled, Redis, scaling pinned at max."""

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason=MISSING_BINARY.format("promtool"))


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def chart_rules(values: dict[str, object] | None = None) -> list[dict[str, object]]:
    """The groups of the PrometheusRule the chart renders."""
    enabled = {"metrics": {"prometheusRule": {"enabled": True}}}
    objects = render_chart(values or enabled)
    (rule,) = [obj for obj in objects if obj["kind"] == "PrometheusRule"]
    groups: list[dict[str, object]] = rule["spec"]["groups"]
    return groups


def test_the_rules_cover_every_alert_the_issue_asks_for() -> None:
    assert {rule["alert"] for rule in alert_rules()} == ASKED_FOR


@needs_promtool
def test_promtool_accepts_the_rules_file() -> None:
    result = promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ASKED_FOR)} rules found" in result.stdout


@needs_promtool
def test_the_promtool_unit_tests_pass_and_test_every_alert() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    }
    assert tested == ASKED_FOR
    result = promtool("test", "rules", UNIT_TESTS.name, cwd=UNIT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_a_broken_rule_fails_the_unit_tests(tmp_path: Path) -> None:
    # given the rules with the backlog alert's threshold made unreachable
    groups = yaml.safe_load(RULES_FILE.read_text())
    for rule in alert_rules(groups["groups"]):
        if rule["alert"] == "JobQueueOldestJobTooOld":
            rule["expr"] = rule["expr"].replace("> 600", "> 6000")
    broken = tmp_path / "rules.yaml"
    broken.write_text(yaml.safe_dump(groups))
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    tests["rule_files"] = [str(broken)]
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests))
    # then promtool's unit tests catch it
    result = promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "JobQueueOldestJobTooOld" in result.stdout + result.stderr


@needs_promtool
def test_the_chart_ships_the_same_rules_and_they_pass_the_same_unit_tests(tmp_path: Path) -> None:
    groups = chart_rules()
    assert groups == yaml.safe_load(RULES_FILE.read_text())["groups"]
    rendered = tmp_path / "rules.yaml"
    rendered.write_text(yaml.safe_dump({"groups": groups}))
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    tests["rule_files"] = [str(rendered)]
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_chart_adds_rule_labels_and_leaves_out_disabled_alerts() -> None:
    settings = all_on_values()["metrics"]["prometheusRule"]
    rules = alert_rules(chart_rules(all_on_values()))
    assert {rule["alert"] for rule in rules} == ASKED_FOR - set(settings["disabledAlerts"])
    for rule in rules:
        assert rule["labels"]["team"] == settings["ruleLabels"]["team"]
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_the_prometheus_rule_is_off_by_default() -> None:
    assert not [obj for obj in render_chart() if obj["kind"] == "PrometheusRule"]


def test_every_alert_links_its_own_runbook_section() -> None:
    anchors = runbook_anchors()
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        assert url.endswith(f"docs/runbooks.md#{rule['alert'].lower()}"), url
        assert rule["alert"].lower() in anchors, f"{RUNBOOKS.name} has no section {rule['alert']}"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


def _meta_label(pod_label: str) -> str:
    """Prometheus' Kubernetes discovery label of a pod label (other characters become _)."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", pod_label)


def test_the_monitors_give_the_job_and_jobqueue_labels_the_rules_select_on() -> None:
    objects = render_chart(all_on_values())
    monitors = [o for o in objects if o["kind"] in ("ServiceMonitor", "PodMonitor")]
    endpoints = [
        endpoint
        for monitor in monitors
        for endpoint in monitor["spec"].get("endpoints", [])
        + monitor["spec"].get("podMetricsEndpoints", [])
    ]
    jobs = {
        relabel["replacement"]
        for endpoint in endpoints
        for relabel in endpoint["relabelings"]
        if relabel["targetLabel"] == "job"
    }
    used = set(re.findall(r'job="([^"]+)"', RULES_FILE.read_text()))
    assert used <= jobs == {"jobqueue-operator", "jobqueue-producer", "jobqueue-worker"}
    # the worker pods' JobQueue comes from the pod label the operator sets to its name
    (pod_monitor,) = [m for m in monitors if m["kind"] == "PodMonitor"]
    (relabel,) = [
        r
        for r in pod_monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
        if r["targetLabel"] == "jobqueue"
    ]
    (pod_label,) = [k for k, v in worker_labels("emails").items() if v == "emails"]
    assert relabel["sourceLabels"] == [_meta_label(pod_label)]


def test_every_metric_the_rules_read_is_one_the_code_exports() -> None:
    defined = code_series()
    for rule in alert_rules():
        used = set(re.findall(r"\bjobqueue_[a-z0-9_]+\b", rule["expr"]))
        assert used <= defined, f"{rule['alert']}: unknown {sorted(used - defined)}"
    # and the redis error kinds the runbook names are the ones the code counts
    assert f"`kind` ({', '.join(KINDS)})" in RUNBOOKS.read_text().replace("\n", " ")
