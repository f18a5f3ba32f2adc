"""Where a running ``jobqueue dev`` says which queue it serves, for the CLI to find.

Local mode runs Redis on a free port; the client commands (``stats``, ``dead``, ``jobs``,
``enqueue``) would otherwise default to ``redis://127.0.0.1:6379/0``, a different queue
if a system Redis listens there. So local mode writes its connection to a state file
and removes it when it stops; a client command given no ``--redis-url`` and no
``REDIS_URL`` uses it while the process that wrote it is alive.

The file is ``JOBQUEUE_DEV_STATE_FILE``, else ``$XDG_RUNTIME_DIR/jobqueue/dev.json``,
else ``<temp dir>/jobqueue-<uid>/dev.json``; it is readable by its owner only (the URL
may carry a password). The last local mode started wins.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

STATE_FILE_NAME = "dev.json"


@dataclass(frozen=True, slots=True)
class DevState:
    """What a client command needs to reach the queue local mode serves."""

    pid: int
    redis_url: str
    stream: str
    group: str
    dead_stream: str
    producer_url: str = ""
    partitions: int = 1
    lanes: str = ""
    """The queue's priority lanes as text (`jobqueue.core.lanes`); '' for none."""


def state_path(environ: Mapping[str, str] | None = None) -> Path:
    """The state file this environment uses (see the module docstring)."""
    env = os.environ if environ is None else environ
    given = env.get("JOBQUEUE_DEV_STATE_FILE", "")
    if given:
        return Path(given).expanduser()
    runtime = env.get("XDG_RUNTIME_DIR", "")
    base = Path(runtime) / "jobqueue" if runtime else _private_temp_dir()
    return base / STATE_FILE_NAME


def _private_temp_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"jobqueue-{os.getuid()}"


def write_state(path: Path, state: DevState) -> None:
    """Write ``state`` to ``path`` atomically, readable by this user only; OSError when
    its directory belongs to someone else (a shared temp dir: never write there)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _owned(path.parent):
        raise PermissionError(f"{path.parent} is not this user's own directory")
    partial = path.with_name(f".{path.name}.{state.pid}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(orjson.dumps(asdict(state)))
    os.replace(partial, path)


def remove_state(path: Path, pid: int) -> None:
    """Remove ``path`` if it still names process ``pid`` (a later local mode's stays)."""
    state = _load(path)
    if state is not None and state.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_state(environ: Mapping[str, str] | None = None) -> tuple[Path, DevState] | None:
    """The live local mode's state and where it was read; None when there is none, it
    cannot be read, or the process that wrote it is gone."""
    path = state_path(environ)
    state = _load(path)
    if state is None or not _alive(state.pid):
        return None
    return path, state


def _owned(path: Path) -> bool:
    """``path`` exists, is no symlink and belongs to this user."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return not path.is_symlink() and info.st_uid == os.getuid()


def _load(path: Path) -> DevState | None:
    # Another user's file (planted in a shared temp dir) must not send our commands to
    # their Redis.
    if not (_owned(path) and _owned(path.parent)):
        return None
    try:
        data = orjson.loads(path.read_bytes())
        return DevState(**data)
    except (OSError, orjson.JSONDecodeError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not ours to follow
        return False
    return True
