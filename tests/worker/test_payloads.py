"""Typed payloads: a handler's pydantic model is checked before it runs, a refused payload
is a dead letter with the reason, and ``jobqueue job-types`` exports the schemas in the
producer's job types format."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field
from redis.asyncio import Redis as AsyncRedis
from worker.conftest import dead_letters, enqueue, run_burst, settings_for

from jobqueue.cli.main import cli
from jobqueue.core.client import AsyncClient
from jobqueue.core.errors import ConfigError
from jobqueue.producer.job_types import JobTypes
from jobqueue.worker.app import App, JobContext


class Resize(BaseModel):
    url: str
    width: int = Field(gt=0)


async def test_a_valid_payload_reaches_the_handler_as_its_model(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    app = App()
    seen: list[object] = []

    @app.handler("resize", payload=Resize)
    async def resize(ctx: JobContext) -> int:
        seen.append(ctx.data)
        return int(ctx.data.width)

    job_id = await enqueue(redis_client, "resize", {"url": "s3://a.png", "width": "640"})
    assert await run_burst(app, settings_for(redis_url)) == 0

    assert seen == [Resize(url="s3://a.png", width=640)]
    info = await AsyncClient(redis_client).get(job_id)
    assert info is not None
    assert (info.state, info.result) == ("succeeded", 640)


async def test_a_refused_payload_is_dead_lettered_at_once_with_the_reason(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    app = App()
    runs: list[object] = []

    @app.handler("resize", payload=Resize, max_attempts=5)
    async def resize(ctx: JobContext) -> None:
        runs.append(ctx.job.id)

    job_id = await enqueue(redis_client, "resize", {"width": -1})
    assert await run_burst(app, settings_for(redis_url)) == 0

    assert runs == []  # never ran, and was not retried
    [dead] = await dead_letters(redis_client)
    assert dead["original_id"] == job_id
    assert dead["reason"].startswith("invalid_payload: payload refused by Resize: ")
    assert "url: Field required" in dead["reason"]
    assert "width: Input should be greater than 0" in dead["reason"]
    info = await AsyncClient(redis_client).get(job_id)
    assert info is not None
    assert info.state == "dead"


def test_a_payload_that_is_not_a_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pydantic model"):
        App().handler("x", payload=dict)  # type: ignore[arg-type]


def test_job_types_exports_the_schemas_the_producer_enforces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an app module with a typed handler and an untyped one
    (tmp_path / "typedapp.py").write_text(
        textwrap.dedent(
            """
            from pydantic import BaseModel, Field
            from jobqueue.worker.app import App

            class Email(BaseModel):
                to: str = Field(min_length=3)
                template: str

            app = App()

            @app.handler("email", payload=Email)
            async def email(ctx): ...

            @app.handler("cleanup")
            async def cleanup(ctx): ...
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "types.json"
    # when its job types are exported
    result = CliRunner().invoke(cli, ["job-types", "typedapp:app", "-o", str(out)])
    printed = CliRunner().invoke(cli, ["job-types", "typedapp:app"])
    # then the producer reads the file and refuses what the worker would refuse
    assert result.exit_code == 0, result.output
    assert printed.output == out.read_text()
    types = JobTypes.from_file(str(out))
    assert sorted(types.names) == ["cleanup", "email"]
    assert types.issues("email", {"to": "a@b.c", "template": "hi"}) == []
    fields = {path for path, _ in types.issues("email", {"to": "x"})}
    assert fields == {"payload", "payload.to"}
    assert types.issues("cleanup", {"anything": 1}) == []


def test_job_types_of_a_bad_app_ref_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["job-types", "no_such_module_here:app"])
    assert result.exit_code == 2
    assert "cannot import" in result.output
