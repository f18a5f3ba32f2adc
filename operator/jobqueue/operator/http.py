"""The operator's own HTTP endpoint: ``/healthz`` for the kubelet, ``/metrics`` for Prometheus."""

from __future__ import annotations

from aiohttp import web

from jobqueue.operator.metrics import OperatorMetrics

METRICS_KEY = web.AppKey("metrics", OperatorMetrics)


async def healthz(request: web.Request) -> web.Response:
    # The event loop answering is the liveness signal: Kopf and every scaling loop share it.
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS_KEY].exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def create_app(operator_metrics: OperatorMetrics) -> web.Application:
    app = web.Application()
    app[METRICS_KEY] = operator_metrics
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def start_http(operator_metrics: OperatorMetrics, port: int) -> web.AppRunner:
    """Serve on ``0.0.0.0:port``; the caller cleans the runner up."""
    runner = web.AppRunner(create_app(operator_metrics), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner
