"""The README's idempotency pattern: an effect applied once per job, however often the
handler runs; handlers see the job id and the attempt number."""

from __future__ import annotations

from redis.asyncio import Redis as AsyncRedis
from worker.conftest import enqueue, group_pending, record_of, run_burst, settings_for

from jobqueue.core.keys import QueueKeys
from jobqueue.worker.app import App, JobContext
from jobqueue.worker.testing import app as testing_app

KEYS = QueueKeys()


async def test_an_effect_keyed_by_the_job_id_lands_once_across_failed_attempts(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given credit jobs whose first two attempts fail after their effect landed
    # (as a write that timed out and landed later would), and one that does not fail
    flaky = await enqueue(redis_client, "credit", {"account": "acct", "amount": 5, "fail_after": 2})
    steady = await enqueue(redis_client, "credit", {"account": "acct", "amount": 7})
    # when a worker runs them to the end
    assert await run_burst(testing_app, settings_for(redis_url, max_attempts=5)) == 0
    # then the flaky one ran three times, yet each amount was added once
    assert (await record_of(redis_client, flaky)).get("attempts") == "3"
    assert await redis_client.hget("acct", "balance") == "12"
    assert await redis_client.smembers("acct:applied") == {flaky, steady}
    assert await group_pending(redis_client) == 0


async def test_a_handler_sees_its_job_id_and_attempt_number(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    seen: list[tuple[str, int]] = []
    app = App()

    @app.handler("twice")
    async def twice(ctx: JobContext) -> None:
        seen.append((ctx.job_id, ctx.attempt))
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    job_id = await enqueue(redis_client, "twice")
    assert await run_burst(app, settings_for(redis_url)) == 0
    assert seen == [(job_id, 1), (job_id, 2)]
