"""A Sentinel-managed Redis for tests: a primary, a replica (or more) and three sentinels.

    setup = SentinelSetup(tmp_path)
    setup.start()                 # returns once the sentinels agree and see the replica
    setup.url                     # redis+sentinel://127.0.0.1:p1,...:p3/jqmaster/0
    setup.kill_primary()          # SIGKILL, as a lost node
    setup.wait_for_failover()     # the replica is the master now, per every sentinel
    setup.stop()

Every process runs on a free loopback port with its files in ``directory``. The
sentinels judge a master down after ``down_after_ms`` and may start a new failover
after ``failover_timeout_ms``, both short, so a failover takes a few seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from support.redis_server import RedisServer, free_port

SERVICE = "jqmaster"


@dataclass(frozen=True)
class TlsFiles:
    """A private CA and one certificate for 127.0.0.1 it signed (openssl, in a directory)."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path) -> TlsFiles:
        directory.mkdir(parents=True, exist_ok=True)
        ca, key, cert = directory / "ca.crt", directory / "server.key", directory / "server.crt"
        (directory / "ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        steps = [
            f"req -x509 -newkey rsa:2048 -nodes -keyout {directory}/ca.key -out {ca} "
            "-days 1 -subj /CN=jobqueue-test-ca",
            f"req -newkey rsa:2048 -nodes -keyout {key} -out {directory}/server.csr "
            "-subj /CN=127.0.0.1",
            f"x509 -req -in {directory}/server.csr -CA {ca} -CAkey {directory}/ca.key "
            f"-CAcreateserial -out {cert} -days 1 -extfile {directory}/ext",
        ]
        for step in steps:
            subprocess.run(["openssl", *step.split()], check=True, capture_output=True)
        return cls(ca, cert, key)

    @property
    def client_options(self) -> dict[str, Any]:
        return {"ssl": True, "ssl_ca_certs": str(self.ca)}

    def _directives(self, port: int) -> list[tuple[str, str]]:
        return [
            ("port", "0"),
            ("tls-port", str(port)),
            ("tls-cert-file", str(self.cert)),
            ("tls-key-file", str(self.key)),
            ("tls-ca-cert-file", str(self.ca)),
            ("tls-auth-clients", "no"),
            ("tls-replication", "yes"),  # replicas and sentinels reach servers over TLS too
        ]

    def server_args(self, port: int) -> tuple[str, ...]:
        return tuple(
            part for name, value in self._directives(port) for part in (f"--{name}", value)
        )

    def sentinel_config(self, port: int) -> str:
        return "".join(f"{name} {value}\n" for name, value in self._directives(port))


class Sentinel:
    """One redis-sentinel process."""

    def __init__(
        self,
        directory: Path,
        primary_port: int,
        down_after_ms: int,
        failover_timeout_ms: int,
        password: str | None = None,
        master_password: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        binary = shutil.which("redis-sentinel")
        if binary is None:
            raise RuntimeError("redis-sentinel is not installed (scripts/setup installs it)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.config = directory / "sentinel.conf"
        directory.mkdir(parents=True, exist_ok=True)
        # Sentinel rewrites its config file as it learns: it must be its own, writable.
        self.config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {directory}\n"
            f"logfile {directory / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
            + (f"requirepass {password}\n" if password else "")
            + (f"sentinel auth-pass {SERVICE} {master_password}\n" if master_password else "")
            + (tls.sentinel_config(self.port) if tls else "")
        )
        self.password = password
        self.client_options = tls.client_options if tls else {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def client(self) -> redis.Redis:
        return redis.Redis(
            port=self.port,
            password=self.password,
            decode_responses=True,
            socket_timeout=2.0,
            **self.client_options,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class SentinelSetup:
    """A primary, ``replicas`` replicas and three sentinels watching them as ``SERVICE``."""

    def __init__(
        self,
        directory: Path,
        *,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        appendonly: bool = False,
        replicas: int = 1,
        password: str | None = None,
        sentinel_password: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        """``password``: the servers' (requirepass and masterauth); ``sentinel_password``:
        the sentinels' own requirepass; ``tls``: every process speaks TLS only."""
        self.directory = directory
        self.password = password
        self.sentinel_password = sentinel_password
        self.tls = tls
        self.client_options: dict[str, Any] = tls.client_options if tls else {}
        # A replica (re)joining is synced at once, not after the default 5 s wait for others.
        sync_now: tuple[str, ...] = ("--repl-diskless-sync-delay", "0")
        if password:
            sync_now += ("--masterauth", password)  # any of them may become a replica
        self.primary = RedisServer(
            directory / "primary", appendonly=appendonly, password=password, extra_args=sync_now
        )
        self.replicas = [
            RedisServer(
                directory / f"replica-{n}" if n else directory / "replica",
                appendonly=appendonly,
                password=password,
                extra_args=(*sync_now, "--replicaof", "127.0.0.1", str(self.primary.port)),
            )
            for n in range(replicas)
        ]
        self.replica = self.replicas[0]
        if tls is not None:
            for server in [self.primary, *self.replicas]:
                server.extra_args += tls.server_args(server.port)
                server.client_options = tls.client_options
        self.sentinels = [
            Sentinel(
                directory / f"sentinel-{n}",
                self.primary.port,
                down_after_ms,
                failover_timeout_ms,
                password=sentinel_password,
                master_password=password,
                tls=tls,
            )
            for n in range(3)
        ]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        auth = f":{self.password}@" if self.password else ""
        options = {"sentinel_password": self.sentinel_password}
        if self.tls is not None:
            options["ssl_ca_certs"] = str(self.tls.ca)
        query = urllib.parse.urlencode({k: v for k, v in options.items() if v})
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        return f"{scheme}://{auth}{hosts}/{SERVICE}/0" + (f"?{query}" if query else "")

    def start(self, timeout_s: float = 30.0) -> None:
        self.primary.start()
        for replica in self.replicas:
            replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        self._wait(self._ready, timeout_s, "the sentinels to see each other and the replica")

    def _ready(self) -> bool:
        for server in self.replicas:
            with redis.Redis(
                port=server.port,
                password=self.password,
                decode_responses=True,
                **self.client_options,
            ) as replica:
                if replica.info("replication").get("master_link_status") != "up":
                    return False
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                state = client.sentinel_master(SERVICE)
            if int(state["num-other-sentinels"]) < 2 or int(state["num-slaves"]) < len(
                self.replicas
            ):
                return False
        return True

    def master_port(self) -> int | None:
        """The master's port as every sentinel reports it; None while they disagree."""
        ports = set()
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                ports.add(int(client.sentinel_get_master_addr_by_name(SERVICE)[1]))
        return ports.pop() if len(ports) == 1 else None

    def master_url(self) -> str:
        """A plain ``redis://`` URL of the current master (without TLS)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.master_port()}/0"

    def server(self, port: int) -> RedisServer:
        return next(s for s in [self.primary, *self.replicas] if s.port == port)

    def kill_primary(self) -> int:
        """SIGKILL the server that is the master now (at first: ``primary``); its port."""
        port = self.master_port()
        assert port is not None, "the sentinels disagree on the master"
        self.server(port).kill()
        return port

    def revive(self, port: int, timeout_s: float = 60.0) -> None:
        """Start the server on ``port`` again, as a restarted pod would, and wait until the
        sentinels made it a replica of the current master and it is in sync."""
        self.server(port).start()

        def in_sync() -> bool:
            with redis.Redis(
                port=port, password=self.password, decode_responses=True, **self.client_options
            ) as server:
                info = server.info("replication")
            return info.get("role") == "slave" and info.get("master_link_status") == "up"

        self._wait(in_sync, timeout_s, f"the server on {port} to rejoin as a replica")

    def wait_for_failover(self, old_port: int, timeout_s: float = 60.0) -> int:
        """Wait until every sentinel names a master other than ``old_port`` and that
        server accepts writes; returns its port."""
        self._wait(lambda: self._promoted(old_port), timeout_s, "the failover")
        port = self.master_port()
        assert port is not None
        return port

    def _promoted(self, old_port: int) -> bool:
        port = self.master_port()
        if port is None or port == old_port:
            return False
        with redis.Redis(
            port=port, password=self.password, decode_responses=True, **self.client_options
        ) as server:
            return server.info("replication").get("role") == "master"

    def _wait(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"timed out waiting for {what}")

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for replica in self.replicas:
            replica.stop()
        self.primary.stop()
