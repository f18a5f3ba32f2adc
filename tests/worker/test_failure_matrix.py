"""The reference failure matrix, with real worker processes and a real Redis.

Each test starts ``jobqueue worker jobqueue.worker.testing:app`` subprocesses (see
``support/worker_process.py``), does to them what production does (SIGKILL, SIGTERM,
a Redis restart, a job that kills its worker) and polls Redis for the outcome.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from support.records import sync_state
from support.redis_server import RedisServer
from support.worker_process import WorkerProcess, wait_for, xadd_job

from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import new_job_id
from jobqueue.worker.testing import CRASH_COUNTS_KEY

KEYS = QueueKeys()
STREAM, GROUP, DEAD = KEYS.stream, KEYS.group, KEYS.dead
QUICK = ("--visibility-timeout-s", "2", "--grace-period-s", "10")


Spawn = Callable[..., WorkerProcess]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start worker processes that are SIGKILLed at teardown if still alive."""
    started: list[WorkerProcess] = []

    def start(redis_url: str, consumer: str, *args: str) -> WorkerProcess:
        # Retries wait at most 0.2 s here, so retry paths finish quickly.
        env = {"JOBQUEUE_BACKOFF_BASE_S": "0.05", "JOBQUEUE_BACKOFF_CAP_S": "0.2"}
        worker = WorkerProcess(redis_url, consumer, *args, log_dir=tmp_path, env=env).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def enqueue(client: redis.Redis, job_type: str, payload: dict[str, object]) -> str:
    return xadd_job(client, STREAM, job_type, payload)


def states(client: redis.Redis, ids: list[str]) -> list[str | None]:
    return [state_of(client, i) for i in ids]


def state_of(client: redis.Redis, job_id: str) -> str | None:
    return sync_state(client, job_id, KEYS)


def held_by(client: redis.Redis, consumer: str) -> int:
    try:
        consumers = client.xinfo_consumers(STREAM, GROUP)
    except redis.ResponseError:  # no group yet: the worker has not started
        return 0
    for info in consumers:
        if info["name"] == consumer:
            return int(info["pending"])
    return 0


def pending(client: redis.Redis) -> int:
    return int(client.xpending(STREAM, GROUP)["pending"])


@pytest.mark.slow
def test_a_sigkilled_workers_jobs_finish_on_another_worker(
    sync_redis: redis.Redis, redis_url: str, spawn: Spawn
) -> None:
    # given worker A holding five slow jobs
    ids = [enqueue(sync_redis, "sleep", {"ms": 1500}) for _ in range(5)]
    a = spawn(redis_url, "pod-a", *QUICK)
    wait_for(lambda: states(sync_redis, ids) == ["running"] * 5, "worker A to run the jobs")
    assert held_by(sync_redis, "pod-a") == 5
    # when A is SIGKILLed mid-job and B runs
    a.kill()
    with spawn(redis_url, "pod-b", *QUICK) as b:
        # then B reclaims and finishes every one of them; nothing is left pending
        wait_for(lambda: states(sync_redis, ids) == ["succeeded"] * 5, "B to finish them")
        assert pending(sync_redis) == 0
        assert "reclaimed 5 idle entries" in b.output()
    assert sync_redis.xlen(DEAD) == 0


def test_sigterm_mid_job_lets_it_finish_and_exits_zero(
    sync_redis: redis.Redis, redis_url: str, spawn: Spawn
) -> None:
    ids = [enqueue(sync_redis, "sleep", {"ms": 800}) for _ in range(3)]
    worker = spawn(redis_url, "pod-t", *QUICK)
    wait_for(lambda: states(sync_redis, ids) == ["running"] * 3, "the jobs to run")
    worker.terminate()
    assert worker.wait() == 0, worker.output()
    assert states(sync_redis, ids) == ["succeeded"] * 3
    assert pending(sync_redis) == 0


@pytest.mark.slow
def test_sigterm_past_the_grace_period_leaves_jobs_pending_and_a_restart_drains_them(
    sync_redis: redis.Redis, redis_url: str, spawn: Spawn
) -> None:
    # given a worker with a short grace period running jobs longer than it
    ids = [enqueue(sync_redis, "sleep", {"ms": 3000}) for _ in range(3)]
    args = ("--visibility-timeout-s", "60", "--grace-period-s", "0.2")
    worker = spawn(redis_url, "pod-g", *args)
    wait_for(lambda: states(sync_redis, ids) == ["running"] * 3, "the jobs to run")
    # when it is stopped, it exits 0 and the unfinished jobs stay pending: nothing lost
    worker.terminate()
    assert worker.wait() == 0, worker.output()
    assert held_by(sync_redis, "pod-g") == 3
    # and the restarted pod (same name) drains its own pending entries first, at once
    with spawn(redis_url, "pod-g", *args):
        wait_for(lambda: states(sync_redis, ids) == ["succeeded"] * 3, "the restart to finish")
    assert pending(sync_redis) == 0


@pytest.mark.slow
def test_redis_restarted_mid_run_loses_nothing(own_redis: RedisServer, spawn: Spawn) -> None:
    client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    # given a worker busy with 3000 record jobs
    ids = [new_job_id() for _ in range(3000)]
    with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.xadd(STREAM, {"id": job_id, "type": "record", "payload": '{"into": "done"}'})
        pipe.execute()
    with spawn(own_redis.url, "pod-r", *QUICK, "--concurrency", "16"):
        wait_for(lambda: client.hlen("done") >= 300, "the worker to get going")
        # when Redis is killed and restarted (AOF on) mid-run
        client.close()
        own_redis.restart()
        client = redis.Redis.from_url(own_redis.url, decode_responses=True)
        # then every job is done (at least once), nothing pending, nothing dead
        wait_for(lambda: client.hlen("done") == 3000, "all jobs recorded", timeout_s=60)
        wait_for(lambda: pending(client) == 0, "nothing pending")
    done = client.hgetall("done")
    assert set(done) == set(ids)
    assert client.xlen(DEAD) == 0
    client.close()


def test_a_job_that_kills_its_worker_is_dead_lettered_instead_of_crash_looping(
    sync_redis: redis.Redis, redis_url: str, spawn: Spawn
) -> None:
    # given a job that os._exit()s every worker that runs it, and one that does so once
    killer = enqueue(sync_redis, "crash", {})
    once = enqueue(sync_redis, "crash", {"times": 1, "into": "done"})
    # when the pod keeps being restarted under the same name (as the kubelet does);
    # one job at a time, since a crash takes every job of the process with it
    exits = []
    args = (*QUICK, "--max-deliveries", "2", "--concurrency", "1", "--burst")
    for _ in range(8):
        worker = spawn(redis_url, "pod-c", *args)
        exits.append(worker.wait(60))
        if exits[-1] == 0:
            break
    # then after max_deliveries the killer is a dead letter and the pod runs clean
    assert exits[-1] == 0, worker.output()
    assert exits.count(137) <= 3
    [dead] = [fields for _, fields in sync_redis.xrange(DEAD)]
    assert dead["original_id"] == killer
    assert dead["reason"].startswith("deliveries: started 2 times by workers that died")
    assert sync_redis.hget("done", once) == "1"
    assert int(sync_redis.hget(CRASH_COUNTS_KEY, killer) or 0) == 2
    assert pending(sync_redis) == 0


def test_entries_from_plain_redis_cli_xadd_are_consumed(
    sync_redis: redis.Redis, redis_url: str, redis_server: RedisServer, spawn: Spawn
) -> None:
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not installed")
    port = str(redis_server.port)
    # given entries written the way a shell script or another language would
    minimal = ["type", "record", "payload", '{"into":"done"}']
    full = [*minimal, "id", "01J0000000000000000000CLI1", "priority", "3", "attempts", "0"]
    full += ["enqueued_at", "2026-01-01T00:00:00Z", "trace_id", "xyz"]
    for fields in (minimal, full):
        subprocess.run([cli, "-p", port, "XADD", STREAM, "*", *fields], check=True)
    # when a burst worker runs, then both were consumed (the minimal one by its entry id)
    worker = spawn(redis_url, "pod-x", "--burst")
    assert worker.wait(60) == 0, worker.output()
    done = sync_redis.hgetall("done")
    assert "01J0000000000000000000CLI1" in done
    assert len(done) == 2
    assert pending(sync_redis) == 0


def test_a_raising_handler_is_retried_then_dead_lettered_with_its_reason(
    sync_redis: redis.Redis, redis_url: str, spawn: Spawn
) -> None:
    # given a job that always fails and one that fails twice, then succeeds
    doomed = enqueue(sync_redis, "fail", {})
    recovers = enqueue(sync_redis, "fail", {"times": 2, "into": "done"})
    # when a worker allowing 3 attempts with a short backoff runs them to the end
    worker = spawn(redis_url, "pod-f", "--max-attempts", "3", "--burst")
    assert worker.wait(60) == 0, worker.output()
    # then the doomed one is a dead letter after 3 attempts, the other one succeeded
    [dead] = [fields for _, fields in sync_redis.xrange(DEAD)]
    assert dead["original_id"] == doomed
    assert dead["attempts"] == "3"
    assert dead["reason"].startswith("attempts: attempts exhausted (3/3)")
    assert "RuntimeError: failing on purpose (attempt 3)" in dead["reason"]
    assert "Traceback" in dead["traceback"]
    assert sync_redis.hget("done", recovers) == "1"
    assert states(sync_redis, [doomed, recovers]) == ["dead", "succeeded"]
