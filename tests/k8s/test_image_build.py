"""The Dockerfile's builder stage, run without Docker: its own `uv sync` commands in a copy
of the workspace (uv's cache, offline), then the virtualenv the runtime stage would copy
is checked: every component installed as a wheel, the console script working, no dev tools.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from k8s.dockerfile import stage_env, stages
from k8s.objects import ROOT

UV = shutil.which("uv")
DEV_ONLY = ("pytest", "mypy", "ruff", "kmock", "helm_python", "hypothesis")


def builder_commands() -> list[list[str]]:
    """The builder's ``uv sync`` invocations, as argument lists."""
    commands = []
    for line in stages()["builder"]:
        if line.startswith("RUN ") and " uv sync " in f"{line} ":
            commands.append(shlex.split(line[line.index("uv sync") :]))
    return commands


MEMBERS: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"][
    "workspace"
]["members"]


def copy_manifests(target: Path) -> None:
    """The Dockerfile's first COPY lines (the files it names into ``./``: the lock, the
    version...), then every member's pyproject.toml; no sources."""
    [top_level] = [
        line.split()[1:-1]
        for line in stages()["builder"]
        if line.startswith("COPY ") and line.endswith(" ./")
    ]
    for name in top_level:
        shutil.copy(ROOT / name, target / name)
    for member in MEMBERS:
        (target / member).mkdir()
        shutil.copy(ROOT / member / "pyproject.toml", target / member / "pyproject.toml")


def copy_sources(target: Path) -> None:
    """The Dockerfile's later COPY lines: each member's folder."""
    for member in MEMBERS:
        shutil.copytree(
            ROOT / member,
            target / member,
            ignore=shutil.ignore_patterns("__pycache__", ".*"),
            dirs_exist_ok=True,
        )


@pytest.mark.slow
@pytest.mark.skipif(UV is None, reason="uv is not installed")
def test_the_builder_stage_yields_a_complete_runtime_virtualenv(tmp_path: Path) -> None:
    # given the builder's environment; when its steps run in order (uv offline: from
    # uv's cache, as after scripts/setup): dependencies from the lock alone, then sources
    source, venv = tmp_path / "src", tmp_path / "venv"
    source.mkdir()
    env = {**os.environ, **stage_env("builder"), "UV_PROJECT_ENVIRONMENT": str(venv)}
    env.pop("VIRTUAL_ENV", None)
    dependencies, members = builder_commands()
    copy_manifests(source)
    for command, then_copy in ((dependencies, copy_sources), (members, None)):
        subprocess.run(
            [str(UV), *command[1:], "--offline"], cwd=source, env=env, check=True, timeout=300
        )
        if then_copy is not None:
            then_copy(source)
    # then every component is installed (not linked to the sources) and the CLI works
    packages = venv / "lib" / "python3.11" / "site-packages"
    installed = {path.name for path in (packages / "jobqueue").iterdir()}
    assert {"core", "worker", "producer", "operator", "cli"} <= installed
    assert not [p for p in packages.glob("*.pth") if str(source) in p.read_text()]
    help_text = subprocess.run(
        [str(venv / "bin" / "jobqueue"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("worker", "producer", "operator"):
        assert f"  {name} " in help_text
    # and no development tool reached it
    assert not [name for name in DEV_ONLY if (packages / name).exists()]
