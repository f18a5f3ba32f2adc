"""GET /openapi.json, and a property-based run of schemathesis against it that must find
no server error (and no response that breaks the document)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from producer.http_api import Api, ProducerProcess
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

EXAMPLES = 300
# Invalid data may also be refused as too large (413); everything else as schemathesis expects.
REJECTED = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REJECTED}}}
)


async def test_the_document_lists_every_route_with_the_configured_job_types(api: Api) -> None:
    status, document = await api.call("GET", "/openapi.json")

    assert status == 200
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/jobs",
        "/jobs/batch",
        "/jobs/stats",
        "/jobs/{job_id}",
        "/dead",
        "/dead/{entry_id}/replay",
        "/dead/{entry_id}",
        "/healthz",
        "/readyz",
    }
    job_in = document["components"]["schemas"]["JobIn"]
    assert job_in["additionalProperties"] is False
    assert "email" in job_in["properties"]["type"]["enum"]


@pytest.fixture
def producer_schema(redis_url: str) -> Iterator[Any]:
    """The schema served by a real ``jobqueue producer`` (authentication has its own tests:
    a token added here would undo schemathesis's own "no credentials" cases)."""
    # Long polls (?wait=S, up to the cap) capped at 0.5 s: each case answers well within
    # schemathesis's read timeout.
    process = ProducerProcess(redis_url, JOBQUEUE_MAX_WAIT_S="0.5")
    try:
        yield schemathesis.openapi.from_url(f"{process.url}/openapi.json", config=CONFIG)
    finally:
        process.stop()


@pytest.mark.slow
def test_the_api_never_answers_5xx_and_keeps_to_its_document(producer_schema: Any) -> None:
    """Valid and invalid requests to every operation (schemathesis cannot use its pytest
    plugin under pytest 9, so hypothesis drives its strategies directly)."""
    cases = st.one_of(
        producer_schema.as_strategy(GenerationMode.POSITIVE),
        producer_schema.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        if _contradicting_idempotency_keys(case):
            # The one rule OpenAPI cannot state: header and body key must agree.
            assert case.call().status_code == 422
        else:
            case.call_and_validate()

    fuzz()


def _contradicting_idempotency_keys(case: Any) -> bool:
    header = (case.headers or {}).get("Idempotency-Key")
    body = case.body.get("idempotency_key") if isinstance(case.body, dict) else None
    return header is not None and body is not None and header != body
