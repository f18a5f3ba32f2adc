"""Bearer tokens: 401 without a valid one; health, readiness and metrics stay open."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from producer.http_api import README_EXAMPLE, Api, StartApi

from jobqueue.core.errors import ConfigError
from jobqueue.producer.auth import TokenSet
from jobqueue.producer.settings import ProducerSettings


@pytest.fixture
async def guarded(start_api: StartApi) -> Api:
    return await start_api(auth_tokens=("s3cret-one", "s3cret-two"))


async def test_without_a_valid_token_the_api_answers_401(guarded: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-one"}):
        status, body = await guarded.call("POST", "/jobs", data=README_EXAMPLE, headers=headers)
        assert (status, body["error"]) == (401, "Unauthorized"), headers
    async with guarded.session.get(guarded.url("/jobs/stats")) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_any_configured_token_is_accepted(guarded: Api) -> None:
    for token in ("s3cret-one", "s3cret-two"):
        headers = {"Authorization": f"Bearer {token}"}
        status, _ = await guarded.call("POST", "/jobs", data=README_EXAMPLE, headers=headers)
        assert status == 202


async def test_health_readiness_and_metrics_need_no_token(guarded: Api) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        async with guarded.session.get(guarded.url(path)) as response:
            assert response.status == 200, path


async def test_with_no_tokens_configured_no_header_is_needed(api: Api) -> None:
    status, _ = await api.call("POST", "/jobs", data=README_EXAMPLE)

    assert status == 202


async def test_tokens_of_a_mounted_file_are_accepted(start_api: StartApi, tmp_path: Path) -> None:
    mounted = tmp_path / "tokens"
    mounted.write_text("from-file-1\nfrom-file-2\n")
    settings = ProducerSettings.from_env(
        {"JOBQUEUE_AUTH_TOKENS": "env-1, env-2", "JOBQUEUE_AUTH_TOKENS_FILE": str(mounted)}
    )
    api = await start_api(
        auth_tokens=settings.auth_tokens, auth_tokens_file=settings.auth_tokens_file
    )

    for token in ("env-1", "env-2", "from-file-1", "from-file-2"):
        headers = {"Authorization": f"Bearer {token}"}
        status, _ = await api.call("POST", "/jobs", data=README_EXAMPLE, headers=headers)
        assert status == 202, token
    status, _ = await api.call("POST", "/jobs", data=README_EXAMPLE)
    assert status == 401


def test_a_rotated_tokens_file_takes_effect_and_a_broken_one_keeps_the_last_tokens(
    tmp_path: Path,
) -> None:
    mounted = tmp_path / "tokens"
    mounted.write_text("old\n")
    tokens = TokenSet([], str(mounted), reload_interval_s=0)
    assert tokens.current() == [b"old"]

    mounted.write_text("new-1,new-2\n")
    os.utime(mounted, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    rotated = tokens.current()
    mounted.unlink()
    after_removal = tokens.current()

    assert rotated == [b"new-1", b"new-2"]
    assert after_removal == rotated


def test_an_unreadable_or_empty_tokens_file_is_a_config_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")

    for path in (str(tmp_path / "missing"), str(empty)):
        with pytest.raises(ConfigError, match="JOBQUEUE_AUTH_TOKENS_FILE"):
            ProducerSettings.from_env({"JOBQUEUE_AUTH_TOKENS_FILE": path})
