"""The Dockerfile, read statically (no Docker engine here): one slim non-root image."""

from __future__ import annotations

import re
import tomllib

from k8s.dockerfile import DOCKERFILE, stages
from k8s.objects import ROOT

BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|make|build-essential|clang|uv)\b")


def final_stage() -> list[str]:
    return list(stages().values())[-1]


def test_the_final_stage_runs_as_uid_10001_with_the_jobqueue_entrypoint() -> None:
    final = final_stage()
    assert [line for line in final if line.startswith("USER")] == ["USER 10001:10001"]
    assert 'ENTRYPOINT ["jobqueue"]' in "\n".join(stages()["base"])


def test_the_runtime_is_slim_python_without_build_tools() -> None:
    base = stages()["base"]
    assert base[0] == "FROM ${PYTHON_IMAGE} AS base"
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim", DOCKERFILE)
    runtime = "\n".join(base + final_stage())
    # only the built virtualenv crosses from the builder; no compiler, uv or pip install
    copies = [line for line in runtime.splitlines() if line.startswith("COPY")]
    assert copies == ["COPY --from=builder /opt/venv /opt/venv"]
    assert not BUILD_TOOLS.search(runtime.replace("/usr/sbin/nologin", ""))
    assert "pip uninstall" in runtime


def test_the_builder_installs_every_workspace_member_from_the_lock() -> None:
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    builder = "\n".join(stages()["builder"])
    for member in members["members"]:
        assert f"COPY {member}/pyproject.toml" in builder
        assert f"COPY {member}/ {member}/" in builder
    assert "uv sync --frozen --no-dev --no-editable" in builder


def test_dockerignore_keeps_the_context_to_sources() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[next(i for i, line in enumerate(ignore) if not line.startswith("#"))] == "*"
    assert "!uv.lock" in ignore
    assert not any(line.startswith("!") and ".venv" in line for line in ignore)
