"""``scripts/dev`` installs what running needs, not the development group."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_ONLY = ("mypy", "schemathesis", "helm", "pytest", "hypothesis", "ruff")


def test_the_runtime_setup_installs_a_working_jobqueue_without_the_dev_tools(
    tmp_path: Path,
) -> None:
    # scripts/dev runs `scripts/setup --runtime`; here into a virtualenv of the test's own
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    subprocess.run([str(ROOT / "scripts/setup"), "--runtime"], cwd=ROOT, env=env, check=True)

    site = next(venv.glob("lib/python*/site-packages"))
    installed = {path.name.lower() for path in site.iterdir()}
    assert not [p for p in installed if p.startswith(DEV_ONLY)], sorted(installed)
    done = subprocess.run(
        [str(venv / "bin/jobqueue"), "--help"], capture_output=True, text=True, check=True
    )
    assert "worker" in done.stdout


def test_scripts_dev_runs_the_runtime_setup_and_no_dev_group() -> None:
    script = (ROOT / "scripts/dev").read_text()
    assert "scripts/setup --runtime" in script
    assert "uv run --frozen --no-dev" in script
