"""Job types and payload schemas from configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobqueue.core.errors import ConfigError
from jobqueue.producer.job_types import DEMO_JOB_TYPES, JobTypes


def test_the_demo_types_check_the_fields_their_handlers_need() -> None:
    types = JobTypes.from_file(None)

    assert types.names == ["email", "report", "thumbnail", "webhook"]
    assert types.issues("email", {"to": "a@example.com", "template": "welcome"}) == []
    assert types.issues("report", {"report_id": 12}) == []
    assert [f for f, _ in types.issues("webhook", {"url": "ftp://x"})] == ["payload.url"]
    assert [f for f, _ in types.issues("thumbnail", {})] == ["payload"]
    assert [f for f, _ in types.issues("email", {"to": "nobody", "template": "t"})] == [
        "payload.to"
    ]


def test_the_demo_schemas_pass_the_checks_they_skip_at_start() -> None:
    # `JobTypes.demo` builds its checkers on first use (no jsonschema at start-up), so the
    # schemas' validity is pinned here instead.
    checked = JobTypes(DEMO_JOB_TYPES)
    lazy = JobTypes.demo()
    for name, payload in [("email", {"to": "x", "template": ""}), ("webhook", {"url": 1})]:
        assert lazy.issues(name, payload) == checked.issues(name, payload) != []


def test_a_yaml_file_names_the_types_and_null_accepts_any_payload(tmp_path: Path) -> None:
    config = tmp_path / "types.yaml"
    config.write_text(
        "resize:\n"
        "  type: object\n"
        "  required: [width]\n"
        "  properties: {width: {type: integer, minimum: 1}}\n"
        "cleanup: null\n"
    )

    types = JobTypes.from_file(str(config))

    assert types.names == ["cleanup", "resize"]
    assert types.issues("cleanup", {"anything": [1, 2]}) == []
    [(field, message)] = types.issues("resize", {"width": 0})
    assert field == "payload.width"
    assert "minimum" in message
    assert [f for f, _ in types.issues("email", {}, prefix="jobs.3.")] == ["jobs.3.type"]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("- a\n- b\n", "must map type names"),
        ("{}", "at least one type"),
        ("broken: {type: 12}\n", "invalid JSON Schema"),
        ("broken: [1]\n", "object or null"),
        ("a: [", "cannot be read"),
    ],
)
def test_a_bad_types_file_is_a_config_error(tmp_path: Path, text: str, complaint: str) -> None:
    config = tmp_path / "types.yaml"
    config.write_text(text)

    with pytest.raises(ConfigError, match=complaint):
        JobTypes.from_file(str(config))


def test_the_draft_2020_12_validator_has_the_last_word() -> None:
    types = JobTypes(
        {
            "email": {"type": "object", "properties": {"to": {"format": "email"}}},
            "pairs": {
                "type": "object",
                "properties": {"xs": {"type": "array", "prefixItems": [{"type": "integer"}]}},
            },
        }
    )

    # fastjsonschema's email format wants a dot in the domain; Draft 2020-12 does not.
    assert types.issues("email", {"to": "a@b"}) == []
    # prefixItems does not exist in Draft 7, so that schema never takes the fast path.
    assert [f for f, _ in types.issues("pairs", {"xs": ["a"]})] == ["payload.xs.0"]
