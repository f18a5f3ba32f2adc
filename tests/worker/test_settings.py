"""Worker settings: environment, flags over environment, clear errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from jobqueue.core.errors import ConfigError
from jobqueue.worker.app import App, load_app
from jobqueue.worker.cli import settings_from, worker
from jobqueue.worker.settings import WorkerSettings


def test_environment_sets_every_documented_knob() -> None:
    env = {
        "REDIS_URL": "redis://example:6380/2",
        "JOBQUEUE_STREAM": "s",
        "JOBQUEUE_GROUP": "g",
        "JOBQUEUE_DEAD_STREAM": "d",
        "JOBQUEUE_CONCURRENCY": "7",
        "JOBQUEUE_VISIBILITY_TIMEOUT_S": "12.5",
        "JOBQUEUE_GRACE_PERIOD_S": "3",
        "JOBQUEUE_MAX_DELIVERIES": "4",
        "JOBQUEUE_JOB_TIMEOUT_S": "9",
        "JOBQUEUE_MAX_ATTEMPTS": "2",
        "JOBQUEUE_WORKER_HTTP_PORT": "0",
        "POD_NAME": "worker-abc",
    }
    s = WorkerSettings.from_env(env)
    assert (s.queue.redis_url, s.queue.stream, s.queue.group) == (
        "redis://example:6380/2",
        "s",
        "g",
    )
    assert s.queue.dead_stream == "d"
    assert (s.concurrency, s.visibility_timeout_s, s.grace_period_s) == (7, 12.5, 3.0)
    assert (s.max_deliveries, s.job_timeout_s, s.max_attempts) == (4, 9.0, 2)
    assert (s.http_port, s.consumer) == (0, "worker-abc")


def test_without_pod_name_the_consumer_is_host_and_pid() -> None:
    assert WorkerSettings.from_env({}).consumer.rsplit("-", 1)[1].isdigit()


def test_flags_win_over_the_environment() -> None:
    env = WorkerSettings.from_env({"JOBQUEUE_CONCURRENCY": "7", "JOBQUEUE_STREAM": "s"})
    s = settings_from(env, {"concurrency": 3, "stream": None, "dead_stream": "dd", "burst": True})
    assert (s.concurrency, s.queue.stream, s.queue.dead_stream, s.burst) == (3, "s", "dd", True)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JOBQUEUE_CONCURRENCY", "0"),
        ("JOBQUEUE_CONCURRENCY", "many"),
        ("JOBQUEUE_GRACE_PERIOD_S", "-1"),
    ],
)
def test_bad_values_are_a_config_error_naming_the_problem(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=r"JOBQUEUE|concurrency|grace"):
        WorkerSettings.from_env({name: value})


def test_app_refs_resolve_or_say_why_not() -> None:
    assert isinstance(load_app("jobqueue.worker.testing:app"), App)
    with pytest.raises(ConfigError, match=r"module:attribute"):
        load_app("jobqueue.worker.testing")
    with pytest.raises(ConfigError, match=r"cannot import"):
        load_app("no_such_module_here:app")
    with pytest.raises(ConfigError, match=r"not a jobqueue.worker\.App"):
        load_app("jobqueue.worker.testing:CRASH_COUNTS_KEY")


def test_a_type_cannot_have_two_handlers() -> None:
    app = App()

    @app.handler("a")
    async def first(ctx: object) -> None: ...

    with pytest.raises(ConfigError, match=r"already registered"):

        @app.handler("a")
        async def second(ctx: object) -> None: ...


def test_the_command_line_refuses_bad_input_with_a_usage_error() -> None:
    runner = CliRunner()
    result = runner.invoke(worker, ["no_such_module_here:app", "--http-port", "0"])
    assert result.exit_code == 2
    assert "cannot import 'no_such_module_here'" in result.output
    result = runner.invoke(worker, ["jobqueue.worker.testing:app", "--concurrency", "0"])
    assert result.exit_code == 2
    assert "concurrency must be positive" in result.output
    result = runner.invoke(
        worker, ["jobqueue.worker.testing:app"], env={"JOBQUEUE_MAX_ATTEMPTS": "lots"}
    )
    assert result.exit_code == 2
    assert "JOBQUEUE_MAX_ATTEMPTS='lots' is invalid" in result.output


@pytest.mark.parametrize("visibility_timeout_s", [0.5, 5.0, 30.0, 300.0])
def test_a_dead_workers_entries_are_looked_for_within_a_second_of_their_timeout(
    visibility_timeout_s: float,
) -> None:
    # a sweep every reclaim_interval_s takes an entry over at most that long after it
    # went idle past the visibility timeout (it was 10 s at the default 30 s: issue 10)
    s = WorkerSettings(visibility_timeout_s=visibility_timeout_s)
    assert 0 < s.reclaim_interval_s <= 1.0
    assert s.reclaim_interval_s <= visibility_timeout_s / 4
    # and a live worker's claims are refreshed well within the timeout
    assert s.heartbeat_interval_s <= visibility_timeout_s / 3


def test_lane_mode_and_weights_read_from_the_environment() -> None:
    lanes = {"JOBQUEUE_LANES": "high:8-10,normal:4-7,low:1-3"}
    assert WorkerSettings.from_env(lanes).weights is None  # strict by default
    weighted = {**lanes, "JOBQUEUE_LANE_MODE": "Weighted", "JOBQUEUE_LANE_WEIGHTS": "high:6"}
    # a lane not named weighs its place from the lowest
    assert WorkerSettings.from_env(weighted).weights == [6, 2, 1]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOBQUEUE_LANE_MODE": "fair"}, "JOBQUEUE_LANE_MODE='fair' is invalid"),
        ({"JOBQUEUE_LANE_MODE": "weighted", "JOBQUEUE_LANE_WEIGHTS": "high"}, "name:weight"),
        ({"JOBQUEUE_LANE_MODE": "weighted", "JOBQUEUE_LANE_WEIGHTS": "high:0"}, "name:weight"),
        ({"JOBQUEUE_LANE_MODE": "weighted", "JOBQUEUE_LANE_WEIGHTS": "top:2"}, "no lane.*top"),
        ({"JOBQUEUE_LANE_WEIGHTS": "high:2"}, "for lane_mode 'weighted'"),
    ],
)
def test_bad_lane_settings_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WorkerSettings.from_env({"JOBQUEUE_LANES": "high:8-10,normal:4-7,low:1-3", **env})


def test_lane_flags_win_over_the_environment() -> None:
    env = WorkerSettings.from_env({"JOBQUEUE_LANES": "a:6-10,b:1-5"})
    flags = {"lanes": "high:8-10,normal:4-7,low:1-3", "lane_mode": "weighted"}
    s = settings_from(env, {**flags, "lane_weights": "low:2"})
    assert [lane.name for lane in s.queue.lanes.lanes] == ["high", "normal", "low"]
    assert s.weights == [3, 2, 2]
    with pytest.raises(ConfigError, match=r"lanes: .*have no lane"):
        settings_from(env, {"lanes": "high:8-10"})
    with pytest.raises(ConfigError, match="names no lane"):
        settings_from(env, {"lane_mode": "weighted", "lane_weights": "high:2"})


def test_the_worker_command_lists_the_lane_flags() -> None:
    result = CliRunner().invoke(worker, ["--help"])
    assert all(f in result.output for f in ("--lanes", "--lane-mode", "--lane-weights"))
