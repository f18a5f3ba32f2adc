"""The publishable packages: every workspace member builds a wheel and an sdist with its
metadata and the one version, and the built wheels alone run a worker.

The wheels are installed into a fresh virtualenv, offline (from the built files and uv's
cache, never an index), away from the workspace (another working directory, no
``PYTHONPATH``); then ``jobqueue worker --burst`` from that virtualenv runs a job on a
private Redis.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
import redis
from support.records import sync_state
from support.redis_server import RedisServer

from jobqueue.core.client import Client
from jobqueue.core.status import JobState

ROOT = Path(__file__).resolve().parents[2]
VERSION = (ROOT / "VERSION").read_text().strip()
MEMBERS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
DISTRIBUTIONS = [f"jobqueue-{member}" for member in MEMBERS]
UV = shutil.which("uv") or str(Path.home() / ".local/bin/uv")
TIMEOUT_S = 600

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(TIMEOUT_S),
    pytest.mark.skipif(not Path(UV).exists(), reason="uv is not installed (scripts/setup)"),
]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert done.returncode == 0, f"{' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``uv build --all-packages``: an sdist, then a wheel built from that sdist, per member."""
    out = tmp_path_factory.mktemp("dist")
    run(UV, "build", "--all-packages", "--out-dir", str(out), cwd=ROOT)
    return out


def wheel_metadata(dist: Path, distribution: str) -> email.message.Message:
    [wheel] = dist.glob(f"{distribution.replace('-', '_')}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_each_member_builds_a_wheel_and_sdist_with_metadata_and_the_one_version(
    dist: Path, distribution: str
) -> None:
    stem = distribution.replace("-", "_")
    assert (dist / f"{stem}-{VERSION}.tar.gz").exists()
    assert (dist / f"{stem}-{VERSION}-py3-none-any.whl").exists()
    metadata = wheel_metadata(dist, distribution)
    assert metadata["Version"] == VERSION
    assert metadata["Summary"]
    assert metadata["Requires-Python"] == ">=3.11"
    assert "Typing :: Typed" in metadata.get_all("Classifier", [])
    assert metadata.get_payload()  # the member's README as the long description
    # siblings are required at exactly this version: members are released together
    siblings = [r for r in metadata.get_all("Requires-Dist", []) if r.startswith("jobqueue-")]
    assert bool(siblings) == (distribution != "jobqueue-core")
    assert all(r.endswith(f"=={VERSION}") for r in siblings), siblings
    with tarfile.open(dist / f"{stem}-{VERSION}.tar.gz") as sdist:
        names = sdist.getnames()
    assert f"{stem}-{VERSION}/PKG-INFO" in names
    assert f"{stem}-{VERSION}/README.md" in names


def test_the_operator_wheel_carries_the_vendored_pod_template_schema(dist: Path) -> None:
    [wheel] = dist.glob("jobqueue_operator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "jobqueue/operator/podtemplate.schema.json" in archive.namelist()


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the built wheels installed offline.

    Their dependencies come at the locked versions, by the exact files the lock names
    (a PEP 751 ``pylock.toml`` exported from uv.lock), which uv's cache holds once the
    workspace was synced; then the wheels themselves, and ``uv pip check`` proves every
    requirement of theirs is met.
    """
    where = tmp_path_factory.mktemp("venv") / "env"
    locked = where.parent / "pylock.toml"
    export = ["export", "--frozen", "--no-dev", "--no-emit-workspace", "--all-packages"]
    run(UV, *export, "--format", "pylock.toml", "--output-file", str(locked), cwd=ROOT)
    run(UV, "venv", "--python", sys.executable, str(where), cwd=where.parent)
    python = ["--python", str(where / "bin" / "python")]
    run(UV, "pip", "install", "--offline", *python, "-r", str(locked), cwd=where.parent)
    wheels = sorted(str(w) for w in dist.glob("*.whl"))
    run(UV, "pip", "install", "--offline", "--no-deps", *python, *wheels, cwd=where.parent)
    run(UV, "pip", "check", *python, cwd=where.parent)
    return where


def isolated_env(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {**{k: v for k, v in os.environ.items() if k in keep}, **extra}


def test_the_installed_packages_come_from_the_wheels_not_the_workspace(venv: Path) -> None:
    code = "import jobqueue.worker, jobqueue.core; print(jobqueue.worker.__file__)"
    where = run(str(venv / "bin" / "python"), "-c", code, cwd=venv, env=isolated_env())
    assert where.startswith(str(venv)), where
    assert "site-packages" in where
    crd = run(str(venv / "bin" / "jobqueue"), "crd", cwd=venv, env=isolated_env())
    assert "podTemplate:" in crd


def test_a_worker_from_the_wheels_runs_a_job_on_a_private_redis(
    venv: Path, own_redis: RedisServer
) -> None:
    with Client.from_url(own_redis.url) as client:
        job = client.enqueue("record", {"into": "from-wheels"})
    env = isolated_env(REDIS_URL=own_redis.url, JOBQUEUE_WORKER_HTTP_PORT="0")
    command = [str(venv / "bin" / "jobqueue"), "worker", "jobqueue.worker.testing:app", "--burst"]
    run(*command, cwd=venv, env=env)

    plain = redis.Redis.from_url(own_redis.url, decode_responses=True)
    assert sync_state(plain, job.job_id) == JobState.SUCCEEDED
    assert plain.hexists("from-wheels", job.job_id)
