"""GET /metrics: requests by route pattern and status, latency, jobs enqueued by type."""

from __future__ import annotations

from producer.http_api import README_EXAMPLE, Api


async def test_requests_latency_and_enqueued_jobs_are_counted(api: Api) -> None:
    await api.call("POST", "/jobs", data=README_EXAMPLE)
    await api.call("POST", "/jobs", data=README_EXAMPLE, headers={"Idempotency-Key": "k"})
    await api.call("POST", "/jobs", data=README_EXAMPLE, headers={"Idempotency-Key": "k"})
    await api.call("POST", "/jobs", json={"type": "nope", "payload": {}})
    await api.call("GET", "/jobs/01MISSING")

    async with api.session.get(api.url("/metrics")) as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()

    assert 'jobqueue_http_requests_total{method="POST",route="/jobs",status="202"} 3.0' in text
    assert 'jobqueue_http_requests_total{method="POST",route="/jobs",status="422"} 1.0' in text
    assert (
        'jobqueue_http_requests_total{method="GET",route="/jobs/{job_id}",status="404"} 1.0' in text
    )
    assert 'jobqueue_http_request_duration_seconds_count{route="/jobs"} 4.0' in text
    assert 'jobqueue_jobs_enqueued_total{lane="",type="email"} 2.0' in text
