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


def copy_workspace(target: Path) -> list[str]:
    """What the Dockerfile's COPY lines bring into /src; returns the member names."""
    members: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"][
        "workspace"
    ]["members"]
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, target / name)
    for member in members:
        shutil.copytree(
            ROOT / member, target / member, ignore=shutil.ignore_patterns("__pycache__", ".*")
        )
    return members


@pytest.mark.slow
@pytest.mark.skipif(UV is None, reason="uv is not installed")
def test_the_builder_stage_yields_a_complete_runtime_virtualenv(tmp_path: Path) -> None:
    # given a copy of what the builder COPYs, and the builder's environment
    source, venv = tmp_path / "src", tmp_path / "venv"
    source.mkdir()
    members = copy_workspace(source)
    env = {**os.environ, **stage_env("builder"), "UV_PROJECT_ENVIRONMENT": str(venv)}
    env.pop("VIRTUAL_ENV", None)
    # when its uv commands run (offline: from uv's cache, as after scripts/setup)
    commands = builder_commands()
    assert len(commands) == 2
    for command in commands:
        subprocess.run(
            [str(UV), *command[1:], "--offline"], cwd=source, env=env, check=True, timeout=300
        )
    # then every component is installed (not linked to the sources) and the CLI works
    packages = venv / "lib" / "python3.11" / "site-packages"
    installed = {path.name for path in (packages / "jobqueue").iterdir()}
    assert {"core", "worker", "producer", "operator", "cli"} <= installed
    assert len(members) == 5
    assert not [p for p in packages.glob("*.pth") if str(source) in p.read_text()]
    help_text = subprocess.run(
        [str(venv / "bin" / "jobqueue"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("worker", "producer", "operator"):
        assert f"  {name} " in help_text
    # and no development tool reached it
    assert not [name for name in DEV_ONLY if (packages / name).exists()]
