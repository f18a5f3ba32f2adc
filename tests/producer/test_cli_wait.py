"""``jobqueue jobs wait ID [--timeout S]``: its exit status says how the job ended."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from click.testing import CliRunner, Result
from producer.test_results_api import burst

from jobqueue.cli.main import cli


def _runner(redis_url: str) -> Any:
    async def run(*args: str) -> Result:
        # The CLI runs its own event loop: off this test's loop.
        invoke = CliRunner().invoke
        return await asyncio.to_thread(invoke, cli, list(args), env={"REDIS_URL": redis_url})

    return run


async def test_jobs_wait_exits_0_once_the_job_succeeded_and_shows_its_result(
    redis_url: str,
) -> None:
    run = _runner(redis_url)
    [job] = orjson.loads((await run("enqueue", "echo", '{"value": 5}', "--json")).output)
    waiting = asyncio.create_task(run("jobs", "wait", job["jobId"], "--timeout", "60", "--json"))
    await asyncio.sleep(0.2)
    await burst(redis_url)
    done = await asyncio.wait_for(waiting, 60)
    assert done.exit_code == 0, done.output
    shown = orjson.loads(done.output)
    assert (shown["state"], shown["result"]) == ("succeeded", 5)


async def test_jobs_wait_exits_1_for_a_dead_job_and_124_on_timeout(redis_url: str) -> None:
    run = _runner(redis_url)
    [dead] = orjson.loads((await run("enqueue", "record", "{}", "--json")).output)
    await burst(redis_url)
    [queued] = orjson.loads((await run("enqueue", "noop", "{}", "--json")).output)

    failed = await run("jobs", "wait", dead["jobId"])
    timed_out = await run("jobs", "wait", queued["jobId"], "--timeout", "0.3")
    unknown = await run("jobs", "wait", "01UNKNOWNJOB", "--timeout", "0.3")

    assert failed.exit_code == 1, failed.output
    assert "dead" in failed.output
    assert timed_out.exit_code == 124, timed_out.output
    assert "timed out after 0.3 s: the job is queued" in timed_out.output
    assert unknown.exit_code == 1
    assert "no job" in unknown.output
