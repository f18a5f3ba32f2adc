"""Child processes of local mode: start one, signal it, notice when it exits.

Every child runs in a session of its own, so Ctrl-C in the terminal reaches local mode
alone; local mode then stops the children in order (workers get SIGTERM and their
grace period) instead of every process racing to exit at once. On Linux each child also
asks the kernel for SIGTERM should local mode itself die (``PR_SET_PDEATHSIG``), so not
even a SIGKILLed ``jobqueue dev`` leaves workers behind. Output goes to one log file per
child, because the live view owns the terminal.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOG_TAIL_CHARS = 600
PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal this process gets when the thread that forked it exits."""


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` giving the child SIGTERM when its parent dies (Linux), else None.

    Call it, and spawn, from the main thread: the kernel ties the signal to the thread
    that forks, not to the process.
    """
    if sys.platform != "linux":
        return None
    prctl = _libc().prctl  # looked up before the fork: the child only makes the call
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sigterm)

    return preexec


def cli_hint() -> str:
    """How a person runs this installation's ``jobqueue`` from the current directory:
    ``.venv/bin/jobqueue`` in a checkout (relative when below it), else its full path."""
    command = jobqueue_command()
    if len(command) > 1:
        return shlex.join(command)  # no console script installed
    script = Path(command[0])
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return shlex.quote(str(script))


def jobqueue_command() -> list[str]:
    """The argv prefix that runs the ``jobqueue`` console script of this installation."""
    # The script next to this interpreter is the one of this virtualenv, even when the
    # user's PATH names another installation.
    beside = Path(sys.executable).parent / "jobqueue"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("jobqueue")
    if found is not None:
        return [found]
    return [
        sys.executable,
        "-c",
        "import sys; from jobqueue.cli.main import main; sys.exit(main())",
    ]


def describe_exit(returncode: int) -> str:
    """``exit 3`` or ``killed by SIGKILL`` for a Popen return code."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit {returncode}"


@dataclass(slots=True)
class Child:
    """One running (or exited) child process and what local mode knows of it."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at_s: float
    """``time.monotonic()`` when it was started."""
    http_port: int = 0
    """Port of its side-server (health and metrics), 0 when it has none."""
    stopping_since_s: float | None = None
    """``time.monotonic()`` when local mode asked it to stop; None while it should run."""
    killed: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self, now_s: float) -> None:
        """Ask the child to stop (SIGTERM, once); it keeps its grace period."""
        if self.stopping_since_s is not None:
            return  # a second SIGTERM could read as "stop now" to the child
        self.stopping_since_s = now_s
        if self.alive:
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: for a child that outlived its grace period."""
        if self.alive:
            self.killed = True
            self.process.kill()

    def log_tail(self) -> str:
        """The last lines the child wrote, to explain why it exited."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-LOG_TAIL_CHARS:].strip()


def spawn(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    http_port: int = 0,
) -> Child:
    """Start ``argv`` as child ``name``, its output appended to ``log_dir/name.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=die_with_parent(),  # only a prctl call runs between fork and exec
        )
    return Child(
        name=name,
        process=process,
        log_path=log_path,
        started_at_s=time.monotonic(),
        http_port=http_port,
    )


def stop_all(children: Sequence[Child], grace_period_s: float) -> None:
    """SIGTERM every live child, wait up to ``grace_period_s`` seconds, SIGKILL the rest.

    Returns once every child has exited, so nothing local mode started is left running.
    """
    now = time.monotonic()
    for child in children:
        child.terminate(now)
    deadline = now + grace_period_s
    for child in children:
        remaining_s = max(0.0, deadline - time.monotonic())
        try:
            child.process.wait(timeout=remaining_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.process.wait()
