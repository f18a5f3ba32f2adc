"""Every dashboard query and alert expression, evaluated by a real Prometheus that scrapes
a real worker, a real producer and the real operator.

The stack: a private Redis; ``jobqueue worker`` and ``jobqueue producer`` processes; the
operator (Kopf and our handlers) against the Kubernetes API emulator, serving a JobQueue of
the same stream, with its /metrics endpoint; and /usr/bin/prometheus on a free port with
temporary storage, scraping the three every second under the job names the chart's
monitors give them, with the shipped rules file loaded.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import yaml
from k8s.operator_run import add_cluster_peering, running_operator
from monitoring.rules import (
    MISSING_BINARY,
    PROMETHEUS,
    RULES_FILE,
    alert_rules,
    dashboard_queries,
    template_variable_selectors,
)
from support.kube_emulator import apply, eventually, jobqueue, start_emulator
from support.redis_server import free_port
from support.worker_process import WorkerProcess

from jobqueue.operator.http import start_http

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(PROMETHEUS is None, reason=MISSING_BINARY.format("prometheus")),
]
DEMO_APP = "jobqueue.worker.demo:app"
JOBQUEUE = str(Path(sys.executable).parent / "jobqueue")
WORKER_TARGET = {"namespace": "team-a", "jobqueue": "demo", "pod": "demo-worker-0"}
PRODUCER_TARGET = {"namespace": "jobqueue", "pod": "jq-jobqueue-producer-0"}
METRIC_NAME = re.compile(r"\bjobqueue_[a-z0-9_]+\b")
PROBES_AND_SCRAPES = ("/metrics", "/healthz", "/readyz")


def prometheus_config(worker: int, producer: int, operator: int) -> dict[str, Any]:
    """Scrape jobs as the chart's ServiceMonitor and PodMonitor make them."""
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": [
            {
                "job_name": "jobqueue-operator",
                "honor_labels": True,  # the queue's own namespace label, as the chart does
                "static_configs": [{"targets": [f"127.0.0.1:{operator}"]}],
            },
            {
                "job_name": "jobqueue-worker",
                "static_configs": [{"targets": [f"127.0.0.1:{worker}"], "labels": WORKER_TARGET}],
            },
            {
                "job_name": "jobqueue-producer",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{producer}"], "labels": PRODUCER_TARGET}
                ],
            },
        ],
    }


@contextlib.contextmanager
def process(command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class PrometheusApi:
    def __init__(self, http: aiohttp.ClientSession, port: int) -> None:
        self.http, self.base = http, f"http://127.0.0.1:{port}"

    async def get(self, path: str, **params: str) -> Any:
        async with self.http.get(self.base + path, params=params) as response:
            body = await response.json(content_type=None)
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.get("/api/v1/query", query=expr)
        assert data["resultType"] in ("vector", "scalar"), data
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    async def has_series(self, name: str) -> bool:
        return bool(await self.get("/api/v1/series", **{"match[]": name}))


async def _ready(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


@contextlib.asynccontextmanager
async def operator_metrics(redis_url: str) -> AsyncIterator[int]:
    """The real operator serving a JobQueue of jobs:work, its /metrics on the port yielded."""
    async for kube in start_emulator():
        add_cluster_peering(kube)
        async with running_operator(kube) as ctx:
            port = free_port()
            runner = await start_http(ctx.metrics, port)
            try:
                spec = {"stream": "jobs:work", "deadLetterStream": "jobs:dead"}
                await apply(kube, jobqueue("demo", redis_url, **spec))
                yield port
            finally:
                await runner.cleanup()
        return


async def enqueue_through_the_producer(http: aiohttp.ClientSession, port: int) -> None:
    url = f"http://127.0.0.1:{port}"
    await eventually(lambda: _ready(http, f"{url}/readyz"), 30, "producer ready")
    jobs = [
        {"type": "email", "payload": {"to": f"u{n}@example.com", "template": "t"}}
        for n in range(20)
    ]
    for job in jobs:
        async with http.post(f"{url}/jobs", json=job) as response:
            assert response.status == 202, await response.text()
    async with http.get(f"{url}/healthz") as response:
        assert response.status == 200


def add_a_malformed_entry(redis_url: str) -> None:
    """A plain XADD without a type, as a foreign producer might send: one dead letter."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.xadd("jobs:work", {"payload": "{}"})
    finally:
        client.close()


async def scraped_enough(api: PrometheusApi) -> bool:
    """Every target up, the jobs done, and enough samples for one-minute rates."""
    targets = (await api.get("/api/v1/targets"))["activeTargets"]
    if len(targets) != 3 or any(t["health"] != "up" for t in targets):
        return False
    done = await api.query('sum(jobqueue_jobs_total{job="jobqueue-worker"})')
    lag = await api.query('jobqueue_queue_lag_jobs{jobqueue="demo"}')
    samples = await api.query('count_over_time(up{job="jobqueue-worker"}[1m])')
    return bool(done and float(done[0]["value"][1]) >= 21 and lag and samples) and (
        float(samples[0]["value"][1]) >= 5
    )


async def rules_evaluated(api: PrometheusApi) -> list[dict[str, Any]] | None:
    rules = [r for g in (await api.get("/api/v1/rules"))["groups"] for r in g["rules"]]
    if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules):
        return rules
    return None


async def test_every_dashboard_query_and_alert_expression_evaluates_in_prometheus(
    redis_url: str, tmp_path: Path
) -> None:
    worker_port, producer_port, prom_port = free_port(), free_port(), free_port()
    worker = WorkerProcess(
        redis_url, "demo-worker-0", "--http-port", str(worker_port), app_ref=DEMO_APP
    )
    producer_cmd = [JOBQUEUE, "producer", "--redis-url", redis_url, "--host", "127.0.0.1"]
    producer_cmd += ["--port", str(producer_port)]
    with worker.start(), process(producer_cmd, tmp_path / "producer.log"):
        worker.wait_ready()
        async with operator_metrics(redis_url) as operator_port, aiohttp.ClientSession() as http:
            config = prometheus_config(worker_port, producer_port, operator_port)
            (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
            assert PROMETHEUS is not None
            prometheus = [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}"]
            prometheus += [f"--storage.tsdb.path={tmp_path / 'data'}"]
            prometheus += [f"--web.listen-address=127.0.0.1:{prom_port}"]
            with process(prometheus, tmp_path / "prometheus.log"):
                api = PrometheusApi(http, prom_port)
                url = f"http://127.0.0.1:{prom_port}/-/ready"
                await eventually(lambda: _ready(http, url), 60, "prometheus ready")
                await enqueue_through_the_producer(http, producer_port)
                add_a_malformed_entry(redis_url)
                await eventually(lambda: scraped_enough(api), 90, "three targets scraped")
                await check_dashboards(api)
                await check_alerts(api)
    worker.stop()


async def check_dashboards(api: PrometheusApi) -> None:
    for where, expr in dashboard_queries():
        result = await api.query(expr)  # valid PromQL that Prometheus evaluates
        # where every series the query reads exists, the panel shows data
        present = [await api.has_series(name) for name in set(METRIC_NAME.findall(expr))]
        if all(present):
            assert result, f"{where}: no data for {expr}"
    for where, label, selector in template_variable_selectors():
        values = await api.get(f"/api/v1/label/{label}/values", **{"match[]": selector})
        assert values, f"{where}: no {label} values for {selector}"
    # The producer's request panels leave probes and scrapes out, though they are counted
    assert await api.query('jobqueue_http_requests_total{route="/metrics"}')
    for where, expr in dashboard_queries():
        if "jobqueue-producer" in where and "jobqueue_http_request" in expr:
            for series in await api.query(expr):
                assert series["metric"].get("route") not in PROBES_AND_SCRAPES, where
    # and the error ratio is 0, not "No data", when nothing failed
    (ratio,) = [expr for where, expr in dashboard_queries() if "Error ratio" in where]
    assert [float(s["value"][1]) for s in await api.query(ratio)] == [0.0]


async def check_alerts(api: PrometheusApi) -> None:
    for rule in alert_rules():
        await api.query(rule["expr"])
    rules = await eventually(lambda: rules_evaluated(api), 30, "rules evaluated")
    assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
    for rule in rules:
        assert rule["health"] == "ok", json.dumps(rule)
