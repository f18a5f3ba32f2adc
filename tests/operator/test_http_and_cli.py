"""The operator's /healthz and /metrics over real HTTP, and the crd command."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from support.redis_server import free_port

from jobqueue.core.errors import ConfigError
from jobqueue.operator.cli import SERVICE_ACCOUNT_TOKEN, crd, operator
from jobqueue.operator.crd import crd_yaml
from jobqueue.operator.http import start_http
from jobqueue.operator.metrics import OperatorMetrics
from jobqueue.operator.policy import PolicySettings, PolicyState, Sample, decide
from jobqueue.operator.settings import OperatorSettings


async def test_metrics_and_health_are_served_over_http() -> None:
    metrics = OperatorMetrics()
    sample = Sample(time_s=0, lag=12, pending=3, replicas=0)
    metrics.observe("team-a", "emails", sample, 4, decide(sample, PolicySettings(), PolicyState()))
    port = free_port()
    runner = await start_http(metrics, port)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
    finally:
        await runner.cleanup()
    assert 'jobqueue_queue_lag_jobs{jobqueue="emails",namespace="team-a"} 12.0' in text
    assert (
        'jobqueue_worker_replicas{jobqueue="emails",kind="desired",namespace="team-a"} 2.0' in text
    )
    assert 'jobqueue_scaling_decisions_total{direction="up",jobqueue="emails"' in text


def test_crd_command_prints_the_generated_crd() -> None:
    result = CliRunner().invoke(crd)
    assert result.exit_code == 0
    assert result.output == crd_yaml()


def test_operator_settings_come_from_the_environment_with_units_in_names() -> None:
    settings = OperatorSettings.from_env(
        {
            "JOBQUEUE_OPERATOR_NAMESPACES": "team-a, team-b",
            "JOBQUEUE_OPERATOR_STATUS_INTERVAL_S": "2.5",
            "JOBQUEUE_OPERATOR_STANDALONE": "true",
        }
    )
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.status_interval_s == 2.5
    assert settings.standalone is True
    assert OperatorSettings.from_env({}) == OperatorSettings()


def test_a_bad_operator_setting_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="JOBQUEUE_OPERATOR_HTTP_PORT='eighty'"):
        OperatorSettings.from_env({"JOBQUEUE_OPERATOR_HTTP_PORT": "eighty"})


def test_the_operator_command_reports_a_bad_setting_in_one_line_before_starting() -> None:
    result = CliRunner().invoke(operator, env={"JOBQUEUE_OPERATOR_HTTP_PORT": "eighty"})

    assert result.exit_code == 2
    assert "JOBQUEUE_OPERATOR_HTTP_PORT='eighty' is invalid" in result.output
    assert not isinstance(result.exception, ConfigError)


@pytest.mark.skipif(
    os.path.exists(SERVICE_ACCOUNT_TOKEN), reason="runs in a pod: credentials are there"
)
@pytest.mark.parametrize(
    ("kubeconfig", "words"),
    [
        (None, "no Kubernetes credentials: not in a pod with a ServiceAccount token"),
        ("/nonexistent/kubeconfig", "KUBECONFIG names /nonexistent/kubeconfig, which does not"),
    ],
)
def test_the_operator_without_a_way_to_a_cluster_says_so_in_one_line(
    tmp_path: Path, kubeconfig: str | None, words: str
) -> None:
    # Given a machine with no cluster credentials (HOME has no ~/.kube/config)
    env = {"HOME": str(tmp_path), "KUBECONFIG": kubeconfig, "JOBQUEUE_OPERATOR_HTTP_PORT": "0"}

    # When the operator starts
    result = CliRunner().invoke(operator, env=env)

    # Then it exits 1 with the reason, before Kopf tries (and crashes) to log in
    assert result.exit_code == 1
    assert words in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_namespace_pattern_is_refused_in_one_line() -> None:
    # a namespaced operator serves exactly the namespaces named (Kopf's scanning is off)
    with pytest.raises(ConfigError, match="'team-\\*' is not a namespace name"):
        OperatorSettings.from_env({"JOBQUEUE_OPERATOR_NAMESPACES": "team-a,team-*"})
    result = CliRunner().invoke(
        operator, ["-n", "Team_A"], env={"JOBQUEUE_OPERATOR_HTTP_PORT": "0"}
    )
    assert result.exit_code == 2
    assert "'Team_A' is not a namespace name" in result.output
