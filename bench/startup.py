"""Start-up: seconds from exec to ready, for a worker and a producer, against baselines.

All in this invocation, alternating per round, against one private redis-server:

- ``import redis``: ``python -c 'import redis'``, exec to exit (the floor of anything
  that talks to Redis from Python);
- raw worker: a Python process that imports redis-py, connects and sends its first
  ``XREADGROUP``, the floor of a Redis Streams consumer;
- ``jobqueue worker jobqueue.worker.testing:app`` (defaults; side server on a free port);
- a bare aiohttp server: imports aiohttp's server and uvloop and answers ``/healthz``,
  the floor of any aiohttp service;
- ``jobqueue producer`` on a free port.

A worker is ready when it reads: one job waits in the stream before the exec, and the
clock stops when the group has delivered it (``XINFO GROUPS`` ``entries-read``, polled
every millisecond). The producer is ready when ``GET /healthz`` answers 200.

    .venv/bin/python bench/startup.py [--rounds 7] [--bytecode cached|none]

Prints the median and range of each, and the worker's and producer's ratios to
``import redis`` (the figure that does not depend on the machine's speed).

``--bytecode cached`` (the default) starts every process as the image does: with
compiled bytecode (the Dockerfile sets ``UV_COMPILE_BYTECODE=1``), from a cache private
to this run (``PYTHONPYCACHEPREFIX``) filled by one unmeasured round. ``none`` compiles
every imported module at every start, as a virtualenv without ``.pyc`` files under
``PYTHONDONTWRITEBYTECODE=1`` does (this machine's default for development checkouts):
that costs 2-3x the start-up and is not what a pod pays.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.redis_server import RedisServer, free_port  # noqa: E402

JOBQUEUE = str(ROOT / ".venv/bin/jobqueue")
PYTHON = sys.executable
STREAM, GROUP = "bench:start", "workers"
POLL_S = 0.001
RAW_WORKER = """
import sys, redis
client = redis.Redis.from_url(sys.argv[1], decode_responses=True)
client.xreadgroup(sys.argv[3], "raw", {sys.argv[2]: ">"}, count=100, block=1000)
"""
BARE_SERVER = """
import sys, uvloop
from aiohttp import web

async def healthz(request):
    return web.Response(text="ok")

app = web.Application()
app.add_routes([web.get("/healthz", healthz)])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), loop=uvloop.new_event_loop(),
            access_log=None, print=None)
"""
ENV: dict[str, str] = dict(os.environ)
"""The children's environment (`bytecode_env`)."""


def delivered(client: redis.Redis) -> bool:
    for group in client.xinfo_groups(STREAM):
        if group["name"] == GROUP:
            return int(group["entries-read"] or 0) >= 1
    return False


def one_job_waiting(client: redis.Redis) -> None:
    client.delete(STREAM)
    client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    client.xadd(STREAM, {"id": "start", "type": "noop", "payload": "{}"})


CPU: dict[str, list[float]] = {}
"""CPU seconds (user + system) each process had used when it was ready, by command."""


def timed(name: str, command: list[str], ready: Callable[[], bool]) -> float:
    """Seconds from exec of ``command`` until ``ready()``; the process is then stopped.
    Its CPU time at that moment goes to `CPU` (steadier than the wall clock when other
    processes compete for the cores)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        while not ready():
            if proc.poll() is not None and not ready():
                raise RuntimeError(f"{command[:3]} exited with {proc.returncode}")
            time.sleep(POLL_S)
        elapsed = time.perf_counter() - started
        CPU.setdefault(name, []).append(proc_cpu_s(proc.pid))
        return elapsed
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc)."""
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def import_redis() -> float:
    started = time.perf_counter()
    subprocess.run([PYTHON, "-c", "import redis"], check=True, env=ENV)
    return time.perf_counter() - started


def raw_worker(client: redis.Redis, url: str) -> float:
    one_job_waiting(client)
    return timed("raw", [PYTHON, "-c", RAW_WORKER, url, STREAM, GROUP], lambda: delivered(client))


def jobqueue_worker(client: redis.Redis, url: str, script: str) -> float:
    one_job_waiting(client)
    command = [script, "worker", "jobqueue.worker.testing:app", "--redis-url", url]
    command += ["--stream", STREAM, "--group", GROUP, "--http-port", str(free_port())]
    return timed("worker", command, lambda: delivered(client))


def producer(url: str, script: str) -> float:
    port = free_port()
    command = [script, "producer", "--redis-url", url, "--host", "127.0.0.1"]
    return timed("producer", [*command, "--port", str(port)], lambda: answers(port))


def bare_server() -> float:
    port = free_port()
    return timed("bare", [PYTHON, "-c", BARE_SERVER, str(port)], lambda: answers(port))


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def bytecode_env(mode: str, tmp: Path) -> None:
    """Point the children at a bytecode cache of this run's own (``cached``: written by
    the warm-up round) or at an empty one they may not write to (``none``)."""
    ENV["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    if mode == "cached":
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        ENV["PYTHONDONTWRITEBYTECODE"] = "1"


def summary(name: str, values: list[float], base: float | None = None) -> str:
    median = statistics.median(values)
    line = f"{name:<22} median {median:.3f} s  range {min(values):.3f}-{max(values):.3f}"
    if base is not None:
        line += f"  ({median / base:.2f}x import redis)"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--jobqueue", default=JOBQUEUE, help="the console script to start (another checkout's)"
    )
    parser.add_argument("--bytecode", choices=["cached", "none"], default="cached")
    args = parser.parse_args()
    names = ["import", "raw", "worker", "bare", "producer"]
    results: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        bytecode_env(args.bytecode, Path(tmp))
        server = RedisServer(Path(tmp))
        server.start()
        try:
            client = redis.Redis.from_url(server.url, decode_responses=True)
            for round_no in range(args.rounds + (args.bytecode == "cached")):
                times = {
                    "import": import_redis(),
                    "raw": raw_worker(client, server.url),
                    "worker": jobqueue_worker(client, server.url, args.jobqueue),
                    "bare": bare_server(),
                    "producer": producer(server.url, args.jobqueue),
                }
                if round_no or args.bytecode == "none":  # round 0 of "cached" compiles
                    for name, seconds in times.items():
                        results[name].append(seconds)
                else:
                    CPU.clear()
        finally:
            server.stop()
    base = statistics.median(results["import"])
    print(
        f"rounds {args.rounds}, bytecode {args.bytecode}, load average "
        f"{os.getloadavg()[0]:.1f}; exec to ready (worker: first job delivered; "
        "servers: /healthz)"
    )
    print(summary("import redis", results["import"]))
    print(summary("raw redis-py worker", results["raw"], base))
    print(summary("jobqueue worker", results["worker"], base))
    print(summary("bare aiohttp server", results["bare"], base))
    print(summary("jobqueue producer", results["producer"], base))
    bare = statistics.median(results["bare"])
    print(f"producer / bare aiohttp server: {statistics.median(results['producer']) / bare:.2f}")
    cpu = {name: statistics.median(values) for name, values in CPU.items()}
    print(
        "CPU at ready, median s: "
        + ", ".join(f"{name} {seconds:.3f}" for name, seconds in cpu.items())
        + f"; producer / bare aiohttp server {cpu['producer'] / cpu['bare']:.2f}"
    )


if __name__ == "__main__":
    main()
