"""One logging setup for every process: text or JSON lines, the job's and process's fields."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import orjson
import pytest

from jobqueue.core.errors import ConfigError
from jobqueue.core.logs import LogSettings, job_fields, setup_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_settings_come_from_the_environment_and_flags_win() -> None:
    env = {"JOBQUEUE_LOG_LEVEL": "debug", "JOBQUEUE_LOG_FORMAT": "JSON"}
    settings = LogSettings.from_env(env)
    assert (settings.level, settings.format) == ("DEBUG", "json")
    assert settings.with_flags("warning", None) == LogSettings(level="WARNING", format="json")
    assert LogSettings.from_env({}) == LogSettings(level="INFO", format="text")


@pytest.mark.parametrize(
    ("name", "value"), [("JOBQUEUE_LOG_LEVEL", "LOUD"), ("JOBQUEUE_LOG_FORMAT", "xml")]
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        LogSettings.from_env({name: value})


def test_json_lines_carry_the_job_and_process_fields(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(LogSettings(format="json"), "worker", pod="pod-1", queue="jobs:work")
    fields = job_fields("J1", "email", "jobs:work", 3, trace_id="T9", reason="fatal")
    logging.getLogger("jobqueue.worker").error("job %s dead", "J1", extra=fields)

    line = orjson.loads(capsys.readouterr().err.strip())

    assert line["message"] == "job J1 dead"
    assert line["level"] == "ERROR"
    assert line["logger"] == "jobqueue.worker"
    for key, value in {"job_id": "J1", "job_type": "email", "queue": "jobs:work"}.items():
        assert line[key] == value
    assert (line["attempts"], line["trace_id"], line["reason"]) == (3, "T9", "fatal")
    assert (line["component"], line["pod"]) == ("worker", "pod-1")
    assert line["time"].endswith("+00:00")


def test_kopf_object_records_name_their_object_and_drop_its_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(LogSettings(format="json"), "operator")
    ref = {"namespace": "ns", "name": "q", "kind": "JobQueue"}
    extra = {"settings": object(), "k8s_skip": False, "k8s_ref": ref}
    # A logger of our own: the real "kopf.objects" posts Events with the settings it carries.
    logging.getLogger("test.kopf").info("scaled", extra=extra)

    line = orjson.loads(capsys.readouterr().err.strip())

    assert line["object"] == ref
    assert "settings" not in line


def test_text_lines_show_a_dead_letters_traceback_and_a_kopf_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(LogSettings(level="DEBUG"), "operator")
    log = logging.getLogger("t")
    log.error("dead", extra={"traceback": "Traceback (most recent call last):\n  boom\n"})
    log.info("scaled", extra={"k8s_ref": {"namespace": "ns", "name": "q"}})

    lines = capsys.readouterr().err.splitlines()

    assert lines[0].endswith("ERROR t dead")
    assert lines[1:3] == ["Traceback (most recent call last):", "  boom"]
    assert lines[3].endswith("INFO t [ns/q] scaled")
