"""SIGTERM: the producer stops accepting connections but finishes in-flight requests."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable

import redis
from producer.http_api import README_EXAMPLE, ProducerProcess

from jobqueue.core.keys import QueueKeys

DEADLINE_S = 30.0


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_sigterm_finishes_the_request_in_flight_then_exits_cleanly(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    producer = ProducerProcess(redis_url)
    request = (
        f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(README_EXAMPLE)}\r\nConnection: close\r\n\r\n"
    ).encode() + README_EXAMPLE
    try:
        # Given a request held in flight: Redis holds back writes, so its enqueue waits,
        sync_redis.execute_command("CLIENT", "PAUSE", str(int(DEADLINE_S * 1000)), "WRITE")
        with socket.create_connection(("127.0.0.1", producer.port), timeout=DEADLINE_S) as conn:
            conn.sendall(request)
            until(lambda: sync_redis.info("clients")["blocked_clients"] == 1, "the enqueue")
            # when SIGTERM arrives and the producer has stopped listening,
            producer.process.send_signal(signal.SIGTERM)
            until(lambda: refuses_connections(producer.port), "the producer to stop listening")
            sync_redis.execute_command("CLIENT", "UNPAUSE")
            reply = conn.makefile("rb").read().decode()
        # then the request is still answered and enqueued, and the producer exits cleanly.
        assert reply.startswith("HTTP/1.1 202"), reply
        assert producer.process.wait(timeout=DEADLINE_S) == 0
        assert sync_redis.xlen(QueueKeys().stream) == 1
    finally:
        sync_redis.execute_command("CLIENT", "UNPAUSE")
        producer.stop()
