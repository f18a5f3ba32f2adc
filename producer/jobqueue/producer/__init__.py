"""The HTTP producer (``jobqueue producer``) and the client-side commands.

==================  =============================================================
module              concept
==================  =============================================================
``app``             `create_app` factory: settings, Redis, routes, middlewares
``server``          serving until SIGTERM; JSON errors for unparseable requests
``deadline``        every request's deadline: 503 with Retry-After, never a hang
``batching``        concurrent single-job enqueues share a round trip, not outcomes
``outcomes``        what an enqueue without a 202 says: not enqueued / unknown, ids
``routes_jobs``     ``/jobs``: enqueue one or a batch, status, cancel, stats
``routes_dead``     ``/dead``: list, replay, delete dead letters
``routes_meta``     ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``
``models``          request and response bodies (pydantic), the OpenAPI source
``openapi``         the OpenAPI 3.1 document
``job_types``       accepted job types and their payload JSON Schemas
``auth``            bearer tokens (constant-time, file re-read on rotation)
``errors``          JSON errors: 4xx with reasons, Redis down -> 503, no tracebacks
``metrics``         Prometheus metrics of the API
``settings``        `ProducerSettings.from_env`
``cli*``            ``producer``, ``enqueue``, ``stats``, ``jobs``, ``dead`` commands
==================  =============================================================

The enqueue, cancel and replay logic itself lives in `jobqueue.core.client`, shared
with the CLI and users' own Python code.
"""
