"""The read loop, supervised: reconnect on Redis outages, restart on crashes.

A Redis outage (connection drop, restart) pauses reading with a jittered backoff and
resumes where it was; nothing is lost, since undelivered entries stay in the stream and
delivered ones stay pending. Any other exception is a crash: the loop is restarted
in-process with a growing delay, re-draining this consumer's pending entries first; after
``max_loop_crashes`` crashes without a good read in between the process is beyond repair
and `LoopBeyondRepair` ends it with a non-zero exit (the kubelet restarts the pod).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.asyncio import Redis as AsyncRedis

from jobqueue.core import redis_errors
from jobqueue.worker.health import RedisHealth
from jobqueue.worker.inflight import InFlight
from jobqueue.worker.reader import Reader, ensure_groups
from jobqueue.worker.resilience import (
    ACCESS_DENIED_ERRORS,
    TRANSIENT_ERRORS,
    reconnect_delay_s,
    vanished,
)
from jobqueue.worker.settings import WorkerSettings

log = logging.getLogger("jobqueue.worker")
CRASH_BASE_S, CRASH_CAP_S = 0.1, 30.0
DENIED_RETRY_S = 1.0
"""Pause between reads Redis refused for want of access, seconds."""


class LoopBeyondRepair(Exception):
    """The read loop crashed ``max_loop_crashes`` times in a row."""


class ReadLoop:
    """Runs `Reader` until the stop event is set."""

    def __init__(
        self,
        redis: AsyncRedis,
        settings: WorkerSettings,
        reader: Reader,
        inflight: InFlight,
        stopping: asyncio.Event,
        health: RedisHealth,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.reader = reader
        self.inflight = inflight
        self.stopping = stopping
        self.health = health
        self.crashes = 0
        """Crashes since the last good read."""
        self.restarts = 0
        """Crashes survived since start (restarts of the loop)."""
        self.outages = 0
        """Failed Redis calls since the last good read."""
        self.last_read_at = time.monotonic()
        self.drained = asyncio.Event()
        """Set while this consumer's own pending entries have been taken back since the
        loop last (re)started; reclaiming waits for it, so a sweep does not take slots
        the drain counts on."""

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.reader.abandon()

    async def _run(self) -> None:
        while not self.stopping.is_set():
            self.reader.abandon()  # a restart begins from what Redis holds
            self.drained.clear()  # no reclaim sweep while the drain takes free slots
            try:
                await ensure_groups(self.redis, self.reader.streams)
                await self.reader.drain_own(self._room)
                self.drained.set()
                await self._read_until_stopped()
            except ACCESS_DENIED_ERRORS as exc:
                # Not an outage: the health watch logs it once and ends the worker if
                # it lasts; until then the loop tries again now and then.
                self.health.note_denied("read", exc)
                self.outages += 1
                await self._pause(DENIED_RETRY_S)
            except TRANSIENT_ERRORS as exc:
                redis_errors.record("worker", exc)
                self.outages += 1
                if self.outages == 1 or self.outages % 20 == 0:
                    log.warning("read loop: Redis unavailable (%s), reconnecting", exc)
                await self._pause(reconnect_delay_s(self.outages))
            except Exception as exc:
                if vanished(exc):
                    # Redis was emptied (FLUSHALL, the stream deleted, a restart without
                    # persistence): what this worker held is gone with it.
                    log.warning("stream or consumer group vanished (%s): recreating it", exc)
                    continue
                self._crashed(exc)
                await self._pause(min(CRASH_CAP_S, CRASH_BASE_S * 2**self.crashes))

    async def _read_until_stopped(self) -> None:
        # A read already sent is taken even when stopping: its entries are delivered
        # to this consumer, so they run (in the grace period) rather than wait pending.
        while self.reader.reading_ahead or (await self._healthy() and await self._room_or_acks()):
            arrived = await self.reader.read_new(read_ahead=not self.stopping.is_set())
            self.last_read_at = time.monotonic()
            self.crashes = self.outages = 0
            if self.health.denied_since:
                self.health.clear_denied("read")
            if self.settings.burst and arrived == 0 and await self._burst_done():
                log.info("burst: queue empty, stopping")
                self.stopping.set()

    def _crashed(self, exc: Exception) -> None:
        self.crashes += 1
        self.restarts += 1
        log.error("read loop crashed (%d in a row)", self.crashes, exc_info=exc)
        if self.crashes >= self.settings.max_loop_crashes:
            self.stopping.set()  # the worker stops gracefully, then exits non-zero
            raise LoopBeyondRepair(f"{self.crashes} crashes in a row, last: {exc!r}") from exc

    async def _healthy(self) -> bool:
        """Wait while Redis refuses writes (new jobs would only fail); False once the
        worker is stopping."""
        if not self.health.ok:
            waits = [
                asyncio.ensure_future(self.health.wait_healthy()),
                asyncio.ensure_future(self.stopping.wait()),
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
        return not self.stopping.is_set()

    async def _room(self) -> bool:
        """Wait for a free slot; False once the worker is stopping."""
        return await self._wait_for_room(carry_acks=False)

    async def _room_or_acks(self) -> bool:
        """Wait for a free slot, or for successes whose flush frees slots (the next read
        carries it); False once the worker is stopping."""
        return await self._wait_for_room(carry_acks=True)

    async def _wait_for_room(self, *, carry_acks: bool) -> bool:
        outcomes = self.reader.outcomes
        while not (
            self.inflight.free or (carry_acks and outcomes.ack_due) or self.stopping.is_set()
        ):
            waits = [
                asyncio.ensure_future(self.inflight.wait_for_room()),
                asyncio.ensure_future(self.stopping.wait()),
            ]
            if carry_acks:
                outcomes.successes.clear()
                waits.append(asyncio.ensure_future(outcomes.successes.wait()))
            outcomes.reader_waiting(carry_acks)
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                outcomes.reader_waiting(False)
                for waiting in waits:
                    waiting.cancel()
        return not self.stopping.is_set()

    async def _pause(self, delay_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), delay_s)

    async def _burst_done(self) -> bool:
        """Nothing in flight here, nothing delayed, and in every lane stream nothing
        pending in the group and nothing left to deliver (a job promoted since the last
        read is in its stream, unread)."""
        if self.inflight.count:
            return False
        keys = self.reader.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.delayed)
            for lane in self.reader.streams:
                pipe.xpending(lane.stream, keys.group)
                pipe.xinfo_stream(lane.stream)
                pipe.xinfo_groups(lane.stream)
            delayed, *per_stream = await pipe.execute()
        if int(delayed):
            return False
        for at in range(0, len(per_stream), 3):
            pending, stream, groups = per_stream[at : at + 3]
            delivered = [g["last-delivered-id"] for g in groups if g["name"] == keys.group]
            if int(pending["pending"]) or delivered != [stream["last-generated-id"]]:
                return False
        return True
