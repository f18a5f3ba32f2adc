"""A chaos run: real ``jobqueue worker`` processes on a real Redis, faults on a schedule.

    plan = ChaosPlan(valid_jobs=3000, sigkills=4)
    report = ChaosRun(plan, RedisServer(tmp / "redis", appendonly=True), tmp).run()
    print(report.summary())
    assert report.failures() == []

The run enqueues valid jobs (``record``) at a steady rate, a few long jobs (``sleep``
for longer than the visibility timeout, so only the heartbeat keeps them) and a few
poison jobs (``crash``: ``os._exit`` whenever run), while it SIGKILLs, SIGTERMs and
restarts workers (under the same consumer name, as the kubelet restarts a pod), kills
their Redis connections (``CLIENT KILL``) and restarts Redis (AOF, fsync always). Then
it lets the workers settle and counts, from Redis and the processes' deaths:

- lost: accepted jobs with no outcome that Redis no longer holds anywhere; stuck: jobs
  still pending, delayed or unread when the settle time is up;
- valid jobs dead-lettered (must be 0), poison jobs dead-lettered (must be all);
- duplicates: extra runs of valid jobs to their end. A job's extra run is explained when
  a live worker ran that job's attempt again because Redis failed under it (a ``CLIENT
  KILL`` dropping the handler's connection after its write landed but before the reply
  came: the handler raised, so it runs again, as the README's guarantees say; the
  workers' JSON logs name each such job, field ``redis_unavailable``); the others are
  bounded by the jobs the dead workers held when they died (SIGKILL, crash; SIGTERM for
  what the grace left);
- long jobs stolen: a long job's attempt started by a second process while the first
  was still alive (the heartbeat failed it).

Every job is enqueued by this process between faults, so the set of accepted jobs is
exact (a Redis restart never interrupts an enqueue).

With ``lanes`` (``high:8-10,normal:4-7,low:1-3``, JOBQUEUE_LANES) and/or ``partitions``
(JOBQUEUE_PARTITIONS) the workers run those paths and the jobs are enqueued through the
client (`jobqueue.core.client.Client`, ids chosen here so the accepted set stays exact),
which routes them: valid jobs at random priorities 1..10, long and poison jobs cycled
over the lanes other than the default first, every job to the partition of its id. The
counts then look in every lane stream, delayed set and dead-letter stream of every
partition, and ``spread`` says how many jobs of each kind went to each stream.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import orjson
import redis

from jobqueue.core.client import Client
from jobqueue.core.client_types import NewJob
from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import parse_lanes
from jobqueue.core.partitions import partition_for
from jobqueue.core.settings import QueueSettings
from jobqueue.core.wire import (
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    MIN_PRIORITY,
    new_job_id,
    utc_now_iso,
)
from support.redis_server import RedisServer
from support.worker_process import WorkerProcess

KEYS = QueueKeys()
DONE, STARTS = "chaos:done", "chaos:starts"
TICK_S = 0.1
T = TypeVar("T")


@dataclass(frozen=True)
class ChaosPlan:
    """What one run does; durations in seconds."""

    workers: int = 3
    valid_jobs: int = 3000
    long_jobs: int = 4
    long_job_ms: int = 4500
    poison_jobs: int = 2
    fault_phase_s: float = 8.0
    sigkills: int = 4
    sigterms: int = 1
    client_kills: int = 2
    redis_restarts: int = 1
    visibility_timeout_s: float = 2.0
    grace_period_s: float = 1.0
    concurrency: int = 16
    max_deliveries: int = 5
    settle_timeout_s: float = 60.0
    seed: int = 1
    lanes: str = ""
    """Priority lanes (JOBQUEUE_LANES text); empty: one stream."""
    partitions: int = 1

    @property
    def queue(self) -> QueueSettings:
        """The queue the workers and the client see (lanes, partitions)."""
        return QueueSettings(lanes=parse_lanes(self.lanes), partitions=self.partitions)

    @property
    def routed(self) -> bool:
        """Whether jobs go through the client's routing instead of a plain XADD."""
        return bool(self.lanes) or self.partitions > 1


@dataclass
class Death:
    consumer: str
    pid: int
    kind: str
    """sigkill, sigterm or crash (the process exited by itself: a poison job)."""
    at: float
    held: int
    """Entries it held when it died (an upper bound of what may run twice)."""


@dataclass
class ChaosReport:
    plan: ChaosPlan
    accepted: dict[str, int] = field(default_factory=dict)
    """Jobs accepted per kind (valid, long, poison)."""
    succeeded: int = 0
    lost: int = 0
    stuck: int = 0
    valid_dead: list[str] = field(default_factory=list)
    """Reasons of valid jobs found in the dead letters."""
    poison_dead: int = 0
    duplicates: int = 0
    rerun_duplicates: int = 0
    """Duplicates of jobs a live worker ran again because Redis failed under them (one
    per such re-run at most)."""
    redis_reruns: int = 0
    """Attempts of valid jobs a live worker ran again because Redis failed under them."""
    duplicate_bound: int = 0
    """Entries the dead workers held: the bound of the other duplicates."""
    long_stolen: list[str] = field(default_factory=list)
    deaths: list[Death] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    spread: dict[str, dict[str, int]] = field(default_factory=dict)
    """Stream -> kind -> jobs enqueued there (only when the jobs are routed)."""
    elapsed_s: float = 0.0

    def failures(self) -> list[str]:
        """What broke a guarantee; empty when the run held every one."""
        problems = []
        if self.lost:
            problems.append(f"{self.lost} jobs lost")
        if self.stuck:
            problems.append(f"{self.stuck} jobs stuck")
        if self.valid_dead:
            problems.append(f"valid jobs dead-lettered: {self.valid_dead[:5]}")
        if self.poison_dead != self.accepted.get("poison", 0):
            problems.append(f"poison dead-lettered {self.poison_dead}/{self.accepted['poison']}")
        if self.duplicates - self.rerun_duplicates > self.duplicate_bound:
            unexplained = self.duplicates - self.rerun_duplicates
            problems.append(f"{unexplained} duplicates > bound {self.duplicate_bound}")
        if self.long_stolen:
            problems.append(f"long jobs stolen from live workers: {self.long_stolen}")
        return problems

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.accepted.items())
        faults = ", ".join(f"{n} {kind}" for kind, n in self.faults.items())
        crashes = sum(1 for d in self.deaths if d.kind == "crash")
        return "\n".join(
            [
                f"jobs accepted       {sum(self.accepted.values())} ({kinds})",
                f"faults              {faults}; {crashes} crashes by poison jobs",
                f"succeeded           {self.succeeded}",
                f"lost                {self.lost}",
                f"stuck               {self.stuck}",
                f"valid dead-lettered {len(self.valid_dead)}",
                f"poison dead-lettered {self.poison_dead}/{self.accepted.get('poison', 0)}",
                f"duplicates          {self.duplicates} ({self.rerun_duplicates} of jobs"
                f" re-run as Redis failed under them, of {self.redis_reruns} such re-runs;"
                f" the others' bound: {self.duplicate_bound} held by workers when they died)",
                f"long jobs stolen    {len(self.long_stolen)}",
                f"elapsed             {self.elapsed_s:.1f} s",
                *(
                    f"  {stream:<28} {', '.join(f'{n} {k}' for k, n in kinds.items())}"
                    for stream, kinds in sorted(self.spread.items())
                ),
            ]
        )


class ChaosRun:
    """One run of `ChaosPlan` against ``server`` (started here, stopped at the end)."""

    def __init__(self, plan: ChaosPlan, server: RedisServer, log_dir: Path) -> None:
        self.plan = plan
        self.server = server
        self.log_dir = log_dir
        self.random = random.Random(plan.seed)
        self.workers: dict[str, WorkerProcess] = {}
        self.logs: list[Path] = []
        """Every worker process's log (JSON lines), restarts included."""
        self.alive_seen: dict[int, float] = {}
        """Last time each worker pid was seen alive (epoch seconds)."""
        self.dead_at: dict[int, float] = {}
        self.restarts: list[tuple[float, str]] = []
        self.ids: dict[str, list[str]] = {"valid": [], "long": [], "poison": []}
        self.report = ChaosReport(plan)
        queue = plan.queue
        self.partition_keys = queue.partition_keys
        self.streams = [s for keys in self.partition_keys for s in queue.lanes.streams(keys)]
        """Every ready stream: each lane of each partition."""
        self.priorities = random.Random(plan.seed + 1)
        """Valid jobs' priorities (apart from `random`, so the faults stay the seed's)."""
        lanes = queue.lanes.lanes
        default = queue.lanes.default
        # Long and poison jobs meet the non-default lanes' paths first.
        self.cycle = [lane.high for lane in lanes if lane != default]
        self.cycle += [default.high] if default is not None else [DEFAULT_PRIORITY]

    def run(self) -> ChaosReport:
        started = time.monotonic()
        self.server.start()
        self.client = redis.Redis.from_url(self.server.url, decode_responses=True)
        self.queue_client: Client | None = None
        if self.plan.routed:
            settings = dataclasses.replace(self.plan.queue, redis_url=self.server.url)
            self.queue_client = Client(settings)
        try:
            for n in range(self.plan.workers):
                self._start(f"chaos-{n}")
            self._fault_phase()
            self._settle()
            self._count()
        finally:
            for worker in self.workers.values():
                worker.stop(timeout_s=10)
            self.client.close()
            if self.queue_client is not None:
                self.queue_client.close()
            self.server.stop()
        self.report.elapsed_s = time.monotonic() - started
        return self.report

    # -- the fault phase ---------------------------------------------------------------

    def _fault_phase(self) -> None:
        plan, rnd = self.plan, self.random
        kinds = ["sigkill"] * plan.sigkills + ["sigterm"] * plan.sigterms
        kinds += ["client_kill"] * plan.client_kills + ["redis_restart"] * plan.redis_restarts
        at = sorted(rnd.uniform(0.1, 0.9) * plan.fault_phase_s for _ in kinds)
        rnd.shuffle(kinds)
        faults = list(zip(at, kinds, strict=True))
        ticks = max(1, int(plan.fault_phase_s / TICK_S))
        per_tick = plan.valid_jobs / ticks
        begin, enqueued = time.monotonic(), 0
        for tick in range(ticks):
            now = time.monotonic() - begin
            target = round(per_tick * (tick + 1))
            self._enqueue("valid", target - enqueued)
            enqueued = target
            if tick == 0:
                self._enqueue("long", plan.long_jobs - plan.long_jobs // 2)
            if tick == ticks // 2:
                self._enqueue("long", plan.long_jobs // 2)
            if tick == ticks // 3:
                self._enqueue("poison", plan.poison_jobs)
            while faults and faults[0][0] <= now:
                self._fault(faults.pop(0)[1])
            self._watch()
            time.sleep(max(0.0, begin + (tick + 1) * TICK_S - time.monotonic()))

    def _fault(self, kind: str) -> None:
        alive = [w for w in self.workers.values() if w.poll() is None]
        if kind in ("sigkill", "sigterm") and not alive:
            kind = f"{kind} skipped (no worker alive)"
        self.report.faults[kind] = self.report.faults.get(kind, 0) + 1
        if kind == "redis_restart":
            self.server.restart()
            return
        if kind == "client_kill":
            self._retry(lambda: self.client.client_kill_filter(_type="normal", skipme=True))
            return
        if not alive:
            return
        worker = self.random.choice(alive)
        if kind == "sigkill":
            worker.kill()
            # Counted once it is dead: counted before, a batch it read and ran between
            # the count and the signal would be duplicates beyond the bound. Nothing takes
            # its entries over sooner than the visibility timeout.
            self._died(worker, "sigkill", self._held(worker.consumer))
            delay = self.random.uniform(0, 1.5 * self.plan.visibility_timeout_s)
            self.restarts.append((time.monotonic() + delay, worker.consumer))
        else:
            worker.signal(signal.SIGTERM)

    def _watch(self) -> None:
        """Note deaths (poison crashes, SIGTERMs done) and restart what is due."""
        now = time.time()
        for worker in list(self.workers.values()):
            code = worker.poll()
            if code is None:
                self.alive_seen[worker.pid] = now
            elif worker.pid not in self.dead_at:
                kind = "sigterm" if code == 0 else "crash"
                self._died(worker, kind, self._held(worker.consumer))
                self.restarts.append((time.monotonic(), worker.consumer))
        due = [r for r in self.restarts if r[0] <= time.monotonic()]
        for entry in due:
            self.restarts.remove(entry)
            self._start(entry[1])

    def _died(self, worker: WorkerProcess, kind: str, held: int) -> None:
        self.dead_at[worker.pid] = time.time()
        self.report.deaths.append(Death(worker.consumer, worker.pid, kind, time.time(), held))

    def _start(self, consumer: str) -> None:
        plan = self.plan
        args = ["--visibility-timeout-s", str(plan.visibility_timeout_s)]
        args += ["--grace-period-s", str(plan.grace_period_s)]
        args += ["--concurrency", str(plan.concurrency)]
        args += ["--max-deliveries", str(plan.max_deliveries)]
        env = {"JOBQUEUE_BACKOFF_BASE_S": "0.1", "JOBQUEUE_BACKOFF_CAP_S": "0.5"}
        env["JOBQUEUE_LOG_FORMAT"] = "json"  # `_redis_reruns` reads the logs' fields
        env |= {"JOBQUEUE_LANES": plan.lanes, "JOBQUEUE_PARTITIONS": str(plan.partitions)}
        worker = WorkerProcess(self.server.url, consumer, *args, log_dir=self.log_dir, env=env)
        self.workers[consumer] = worker.start()
        self.logs.append(worker.log_path)
        self.alive_seen[worker.pid] = time.time()

    # -- jobs ----------------------------------------------------------------------------

    def _enqueue(self, kind: str, count: int) -> None:
        if count <= 0:
            return
        job_type, payload = {
            "valid": ("record", {"into": DONE}),
            "long": ("sleep", {"ms": self.plan.long_job_ms, "into": DONE, "starts": STARTS}),
            "poison": ("crash", {}),
        }[kind]
        ids = [new_job_id() for _ in range(count)]
        if self.queue_client is not None:
            self._enqueue_routed(kind, job_type, payload, ids)
            return
        text = orjson.dumps(payload).decode()

        def write() -> None:
            with self.client.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    fields = {"id": job_id, "type": job_type, "payload": text}
                    fields |= {"priority": "5", "enqueued_at": utc_now_iso(), "attempts": "0"}
                    pipe.xadd(KEYS.stream, fields)  # type: ignore[arg-type]
                pipe.execute()

        # Faults run in this thread between enqueues, so none cuts a chunk in half.
        write()
        self.ids[kind] += ids
        self.report.accepted[kind] = len(self.ids[kind])

    def _enqueue_routed(
        self, kind: str, job_type: str, payload: dict[str, object], ids: list[str]
    ) -> None:
        """Enqueue through the client, which picks each job's lane and partition."""
        client = self.queue_client
        assert client is not None
        jobs = []
        for n, job_id in enumerate(ids, start=len(self.ids[kind])):
            if kind == "valid":
                priority = self.priorities.randint(MIN_PRIORITY, MAX_PRIORITY)
            else:
                priority = self.cycle[n % len(self.cycle)]
            jobs.append(NewJob(job_type, payload, priority=priority, job_id=job_id))
        # A repeat of the call after a cut connection enqueues nothing twice (fixed ids).
        results = self._retry(lambda: client.enqueue_many(jobs))
        assert [r.job_id for r in results] == ids
        self.ids[kind] += ids
        self.report.accepted[kind] = len(self.ids[kind])
        queue = self.plan.queue
        for job in jobs:
            assert job.job_id is not None
            # The client's routing, recomputed: the partition of the id, the priority's lane.
            partition = partition_for(
                job.job_id, queue.partitions, partition_key=None, idempotency_key=None
            )
            stream = queue.lanes.stream_for(self.partition_keys[partition], job.priority)
            into = self.report.spread.setdefault(stream, {})
            into[kind] = into.get(kind, 0) + 1

    def _held(self, consumer: str) -> int:
        def held() -> int:
            total = 0
            for stream in self.streams:
                try:
                    summary = self.client.xpending(stream, KEYS.group)
                except redis.ResponseError:  # no group yet: no worker has started
                    continue
                for row in summary["consumers"]:
                    if row["name"] == consumer:
                        total += int(row["pending"])
            return total

        return self._retry(held)

    def _retry(self, call: Callable[[], T], timeout_s: float = 30.0) -> T:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return call()
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    # -- the end ---------------------------------------------------------------------------

    def _settle(self) -> None:
        deadline = time.monotonic() + self.plan.settle_timeout_s
        while time.monotonic() < deadline:
            self._watch()
            if not self._unsettled():
                return
            time.sleep(TICK_S)

    def _outcomes(self) -> tuple[dict[str, int], dict[str, str]]:
        done = {k: int(v) for k, v in self._retry(lambda: self.client.hgetall(DONE)).items()}
        dead: dict[str, str] = {}
        for stream in dict.fromkeys(keys.dead for keys in self.partition_keys):
            rows = self._retry(lambda stream=stream: self.client.xrange(stream))
            dead |= {fields.get("original_id", ""): fields.get("reason", "") for _, fields in rows}
        return done, dead

    def _unsettled(self) -> set[str]:
        done, dead = self._outcomes()
        every = {i for ids in self.ids.values() for i in ids}
        return every - done.keys() - dead.keys()

    def _count(self) -> None:
        report = self.report
        done, dead = self._outcomes()
        valid = set(self.ids["valid"]) | set(self.ids["long"])
        report.succeeded = len(valid & done.keys())
        report.valid_dead = [dead[i] for i in valid if i in dead]
        report.poison_dead = len(set(self.ids["poison"]) & dead.keys())
        extra = {i: n for i, n in done.items() if i in valid and n > 1}
        report.duplicates = sum(n - 1 for n in extra.values())
        reruns = self._redis_reruns(valid)
        report.redis_reruns = sum(reruns.values())
        report.rerun_duplicates = sum(min(n - 1, reruns[i]) for i, n in extra.items())
        report.duplicate_bound = sum(d.held for d in report.deaths)
        unsettled = self._unsettled()
        held = 0
        for stream in self.streams:
            # A lane no job went to may have no stream (and so no group) at all.
            if not self._retry(lambda stream=stream: self.client.exists(stream)):
                continue
            summary = self._retry(lambda stream=stream: self.client.xpending(stream, KEYS.group))
            groups = self._retry(lambda stream=stream: self.client.xinfo_groups(stream))
            held += int(summary["pending"]) + sum(int(g.get("lag") or 0) for g in groups)
        for keys in self.partition_keys:
            held += int(self._retry(lambda keys=keys: self.client.zcard(keys.delayed)))
        report.stuck = min(len(unsettled), held)
        report.lost = len(unsettled) - report.stuck
        report.long_stolen = self._stolen()

    def _redis_reruns(self, valid: set[str]) -> Counter[str]:
        """Attempts of ``valid`` jobs run again because Redis failed under them, by job,
        as the workers logged them (`jobqueue.worker.execution`, ``redis_unavailable``)."""
        reruns: Counter[str] = Counter()
        for path in self.logs:
            for line in path.read_bytes().splitlines():
                if b"redis_unavailable" not in line:
                    continue
                with contextlib.suppress(orjson.JSONDecodeError):
                    record = orjson.loads(line)
                    if record.get("redis_unavailable") and record.get("job_id") in valid:
                        reruns[record["job_id"]] += 1
        return reruns

    def _stolen(self) -> list[str]:
        """Long jobs whose attempt a second process started while the first was alive."""
        starts: dict[tuple[str, str], list[tuple[float, int]]] = {}
        for row in self._retry(lambda: self.client.lrange(STARTS, 0, -1)):
            job_id, attempt, pid, at = row.split()
            starts.setdefault((job_id, attempt), []).append((float(at), int(pid)))
        stolen = []
        for (job_id, _), runs in starts.items():
            runs.sort()
            for (_, first), (later, second) in itertools.pairwise(runs):
                # The same process again is a re-run after a Redis failure, not a theft.
                if second != first and self.alive_seen.get(first, 0.0) > later:
                    stolen.append(job_id)  # seen alive after the second start
        return stolen
