"""A private redis-server per test session (or per test), on a free port.

Tests never touch the shared server on 6379: they start their own, so they can kill
and restart it. With ``appendonly=True`` the server persists every write (AOF,
fsync always), so a restart loses nothing that was acknowledged.
"""

from __future__ import annotations

import collections
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

PORT_HOLD_S = 120.0
"""How long a port `free_port` handed out stays reserved: longer than any process a test
starts takes to bind it on a loaded machine."""

_PORT_LOCKS = Path(tempfile.gettempdir()) / f"jobqueue-test-ports-{os.getuid()}"
_held: collections.deque[tuple[float, int]] = collections.deque()
"""(when, fd) of the reservations this process holds, oldest first."""


def free_port() -> int:
    """A loopback port nothing listens on, reserved for this process for `PORT_HOLD_S`.

    The kernel names a free port, but it is free again as soon as the probing socket
    closes, until the server the test starts binds it. Tests run in parallel (pytest-xdist
    workers, and other sessions on the same machine) would sometimes be handed the same
    port in that window and one server would fail with "address in use". So every port
    handed out is also locked (flock on a file named after it, released by closing it, or
    by the kernel when the process dies): any process using this function skips a port
    another holds. The lock outlives the bind by design, so the same port is not handed
    out twice in a row either (a test wanting "nobody listens there" gets its own).
    """
    _release_expired()
    _PORT_LOCKS.mkdir(exist_ok=True)
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        fd = os.open(_PORT_LOCKS / str(port), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # another test process holds it: ask the kernel again
            continue
        _held.append((time.monotonic(), fd))
        return port
    raise RuntimeError("no free port that no other test process holds")


def _release_expired() -> None:
    while _held and time.monotonic() - _held[0][0] > PORT_HOLD_S:
        os.close(_held.popleft()[1])


class RedisServer:
    """One redis-server process owned by a test; ``url`` stays valid across restarts."""

    def __init__(
        self,
        directory: Path,
        *,
        appendonly: bool = False,
        password: str | None = None,
        extra_args: tuple[str, ...] = (),
        client_options: dict[str, Any] | None = None,
    ) -> None:
        """``client_options``: what a client needs besides port and password to talk to
        this server (TLS options when ``extra_args`` make it speak TLS only)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (bash .ci/run installs it)")
        self.binary = binary
        self.directory = directory
        self.appendonly = appendonly
        self.password = password
        self.extra_args = extra_args
        self.client_options = client_options or {}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--logfile",
            str(self.directory / "redis.log"),
            *(["--requirepass", self.password] if self.password else []),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_until_ready()

    def _wait_until_ready(self, timeout_s: float = 10.0) -> None:
        client = redis.Redis(
            port=self.port,
            password=self.password,
            socket_connect_timeout=0.2,
            **self.client_options,
        )
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server exited: {log}")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    time.sleep(0.02)
            raise TimeoutError(f"redis-server on port {self.port} did not start")
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL the server: what was not persisted is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Kill and start again on the same port and directory (AOF replayed if on)."""
        self.kill()
        self.start()
