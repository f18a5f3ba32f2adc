"""docs/configuration.md names every environment variable the code reads, and no other."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ["core", "worker", "producer", "operator", "cli"]
VARIABLE = re.compile(r'"((?:JOBQUEUE_[A-Z_]+)|REDIS_URL|POD_NAME)"')


def variables_in_code() -> set[str]:
    found: set[str] = set()
    for component in COMPONENTS:
        for path in (ROOT / component / "jobqueue").rglob("*.py"):
            found.update(VARIABLE.findall(path.read_text()))
    return found


def variables_in_docs() -> set[str]:
    text = (ROOT / "docs" / "configuration.md").read_text()
    return set(re.findall(r"`((?:JOBQUEUE_[A-Z_]+)|REDIS_URL|POD_NAME)`", text))


def test_every_variable_the_code_reads_is_documented() -> None:
    assert variables_in_code() - variables_in_docs() == set()


def test_the_docs_name_no_variable_the_code_does_not_read() -> None:
    assert variables_in_docs() - variables_in_code() == set()
