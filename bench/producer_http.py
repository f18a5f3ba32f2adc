"""Single-job ``POST /jobs`` under ``wrk``: one producer process against a bare aiohttp
handler measured in the same invocation.

Both servers run on uvloop in their own process, one at a time, against the same load:
``wrk`` with ``--connections`` connections (default 64) posting the reference design's
``email`` job for ``--seconds`` per run. The baseline reads the body, parses it with
orjson and answers a fixed 202 JSON: what any aiohttp service pays per request before
doing anything. The producer does the whole job: strict JSON, pydantic, the type's JSON
Schema, the enqueue script on a private Redis (no persistence), the status record.
Rounds alternate baseline and producer; printed: each run's requests/s and p50/p99
latency from ``wrk --latency``, and the median over rounds of producer/baseline.

    .venv/bin/python bench/producer_http.py [--seconds 10] [--connections 64]
        [--threads 2] [--rounds 3] [--before OTHER/.venv/bin/jobqueue]

``--before`` adds another checkout's producer to every round (an A/B in one invocation).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.redis_server import RedisServer, free_port  # noqa: E402

STREAM = "bench:http"
BODY = '{"type":"email","payload":{"to":"user@example.com","template":"welcome"}}'
WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class Run:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_us: float = 0.0
    """The server process's CPU (user + system) per request, in microseconds."""

    def line(self) -> str:
        return (
            f"{self.requests_per_s:9.0f} req/s  p50 {self.p50_ms:6.2f} ms  "
            f"p99 {self.p99_ms:6.2f} ms  CPU {self.cpu_us:5.0f} us/req  "
            f"non-2xx/errors {self.errors}"
        )


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc)."""
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def baseline_server(port: int) -> None:
    """The bare handler (run as ``producer_http.py --baseline-server PORT``)."""
    import orjson
    import uvloop
    from aiohttp import web

    answer = orjson.dumps({"status": "accepted", "jobId": "x", "streamEntryId": "1-1"})

    async def post_job(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        return web.Response(status=202, body=answer, content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.add_routes([web.post("/jobs", post_job), web.get("/healthz", healthz)])
    web.run_app(app, host="127.0.0.1", port=port, loop=uvloop.new_event_loop(),
                access_log=None, print=None)  # fmt: skip


def start(command: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise TimeoutError(f"{command} did not start")


def wrk(port: int, script: Path, args: argparse.Namespace) -> Run:
    done = subprocess.run(
        ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s",
         "--latency", "-s", str(script), f"http://127.0.0.1:{port}/jobs"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    for line in re.findall(r"Socket errors:(.*)", out):
        errors += sum(int(n) for n in re.findall(r"\d+", line))
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Run(rate, _percentile(out, "50%"), _percentile(out, "99%"), errors, requests)


def _percentile(out: str, name: str) -> float:
    match = re.search(rf"^\s+{name}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    assert match is not None, out
    return float(match.group(1)) * UNITS[match.group(2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="another checkout's jobqueue script, run in each round")
    parser.add_argument("--baseline-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        baseline_server(args.baseline_server)
        return
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT)
        env = {**os.environ, "REDIS_URL": server.url, "JOBQUEUE_STREAM": STREAM}
        try:
            measure(server, script, env, args)
        finally:
            server.stop()


def measure(
    server: RedisServer, script: Path, env: dict[str, str], args: argparse.Namespace
) -> None:
    jobqueue = str(Path(sys.executable).with_name("jobqueue"))
    servers = {
        "bare aiohttp": [sys.executable, __file__, "--baseline-server"],
        "jobqueue producer": [jobqueue, "producer"],
    }
    if args.before:
        servers["producer (before)"] = [args.before, "producer"]
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, cpus={os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    ratios: dict[str, list[float]] = {name: [] for name in servers if "producer" in name}
    runs: dict[str, list[Run]] = {name: [] for name in servers}
    client = redis.Redis.from_url(server.url)
    for round_no in range(1, args.rounds + 1):
        results = {}
        for name, command in servers.items():
            port = free_port()
            extra = {"JOBQUEUE_PRODUCER_HOST": "127.0.0.1", "JOBQUEUE_PRODUCER_PORT": str(port)}
            process = start([*command, str(port)] if "--baseline-server" in command else command,
                            port, {**env, **extra})  # fmt: skip
            try:
                cpu_before = proc_cpu_s(process.pid)
                results[name] = run = wrk(port, script, args)
                run.cpu_us = (proc_cpu_s(process.pid) - cpu_before) / run.requests * 1e6
            finally:
                process.terminate()
                process.wait()
            runs[name].append(results[name])
            print(f"round {round_no}  {name:18} {results[name].line()}")
        bare = results["bare aiohttp"].requests_per_s
        for name in ratios:
            ratios[name].append(results[name].requests_per_s / bare)
        client.delete(STREAM)
    client.close()
    for name, measured in runs.items():
        best = max(measured, key=lambda run: run.requests_per_s)
        p99 = statistics.median(run.p99_ms for run in measured)
        cpu = statistics.median(run.cpu_us for run in measured)
        print(
            f"{name:18} best {best.requests_per_s:.0f} req/s, median p99 {p99:.2f} ms, "
            f"median CPU {cpu:.0f} us/request"
        )
    for name, values in ratios.items():
        label = "producer" if name == "jobqueue producer" else "producer before"
        print(f"ratio {label}/bare aiohttp (median of rounds): {statistics.median(values):.2f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
