"""The private redis-server local mode starts when no Redis is given."""

from __future__ import annotations

from pathlib import Path

import redis

from jobqueue.local.private_redis import PrivateRedis


def test_it_answers_keeps_jobs_across_a_restart_and_stops(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        client.xadd("jobs:work", {"type": "record", "payload": "{}"})
        client.close()
        process = server.process
        assert process is not None

        # Given a queued job, when the server stops (SIGTERM flushes the AOF) and starts
        # again on the same directory, then the job is still there.
        server.stop()
        assert process.returncode is not None
        server.start()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.xlen("jobs:work") == 1
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    finally:
        server.stop()
    assert server.process is None
