"""``jobqueue dev`` as a real child process, and its line output read back."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

STARTED = re.compile(r"started (\S+) \(pid (\d+)\)")
PRODUCER = re.compile(r"producer API on \S+ \(pid (\d+)\)")
REPLICAS = re.compile(r"replicas=(\d+)/(\d+)")


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class DevProcess:
    """One ``jobqueue dev --no-live`` child; its stdout lines collected by a thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        command = [str(Path(sys.executable).parent / "jobqueue"), "dev", "--no-live", *args]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout_s: float = 60.0) -> re.Match[str]:
        """The first output line matching ``pattern``, waiting for it up to a deadline."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = regex.search(line)
                if match:
                    return match
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}; output:\n{self.output[-4000:]}")

    def wait_until(self, condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met; output:\n{self.output[-4000:]}")
            time.sleep(0.05)

    def wait_exit(self, timeout_s: float = 90.0) -> int:
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        return code

    def worker_pids(self) -> dict[str, int]:
        """Every worker dev started so far: consumer name -> pid."""
        found = (STARTED.search(line) for line in list(self.lines))
        return {m.group(1): int(m.group(2)) for m in found if m}

    def child_pids(self) -> list[int]:
        pids = list(self.worker_pids().values())
        pids += [int(m.group(1)) for m in map(PRODUCER.search, self.lines) if m]
        return pids

    def max_replicas_seen(self) -> int:
        counts = [int(m.group(1)) for m in map(REPLICAS.search, list(self.lines)) if m]
        return max(counts, default=0)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.child_pids():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
