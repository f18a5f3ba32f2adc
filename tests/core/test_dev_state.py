"""Local mode's state file: written privately, followed only while its writer lives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from jobqueue.core.dev_state import DevState, read_state, remove_state, state_path, write_state


def state(pid: int) -> DevState:
    return DevState(pid, "redis://127.0.0.1:7000/0", "jobs:work", "workers", "{jobs:work}:dead")


def test_the_path_follows_the_environment(tmp_path: Path) -> None:
    explicit = {"JOBQUEUE_DEV_STATE_FILE": str(tmp_path / "s.json")}
    assert state_path(explicit) == tmp_path / "s.json"
    assert state_path({"XDG_RUNTIME_DIR": "/run/user/7"}) == Path("/run/user/7/jobqueue/dev.json")
    assert state_path({}).name == "dev.json"


def test_written_privately_read_while_alive_removed_only_by_its_writer(tmp_path: Path) -> None:
    env = {"JOBQUEUE_DEV_STATE_FILE": str(tmp_path / "dir" / "dev.json")}
    path = state_path(env)
    write_state(path, state(os.getpid()))

    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    assert read_state(env) == (path, state(os.getpid()))
    remove_state(path, os.getpid() + 1)  # another run's: left alone
    assert path.exists()
    remove_state(path, os.getpid())
    assert read_state(env) is None


def test_a_dead_writers_state_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    env = {"JOBQUEUE_DEV_STATE_FILE": str(tmp_path / "dev.json")}
    write_state(state_path(env), state(int(gone.stdout)))
    assert read_state(env) is None


def test_a_symlinked_or_garbled_state_is_ignored(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    write_state(real, state(os.getpid()))
    (tmp_path / "link.json").symlink_to(real)
    (tmp_path / "bad.json").write_text("{not json")

    assert read_state({"JOBQUEUE_DEV_STATE_FILE": str(tmp_path / "link.json")}) is None
    assert read_state({"JOBQUEUE_DEV_STATE_FILE": str(tmp_path / "bad.json")}) is None
