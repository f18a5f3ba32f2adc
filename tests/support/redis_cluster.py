"""A private Redis Cluster for tests: 3 primaries and 3 replicas on free loopback ports.

Each node is a `RedisServer` with ``--cluster-enabled yes``; ``redis-cli --cluster
create`` assigns the slots and the replicas. Tests can move a slot between primaries
(`migrate_slot`, the way ``redis-cli --cluster reshard`` does it, one key at a time) and
fail a primary over to its replica (`failover`).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis
from redis.crc import key_slot

from support.redis_server import RedisServer, free_port

NODE_TIMEOUT_MS = 2000


class RedisCluster:
    """Six redis-server processes forming one cluster; ``url`` names them all."""

    def __init__(self, directory: Path, *, primaries: int = 3, replicas: int = 1) -> None:
        self.nodes = [
            RedisServer(
                directory / f"node{i}",
                extra_args=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(directory / f"node{i}" / "nodes.conf"),
                    # The bus port is its own free port (the default, port + 10000, may
                    # be taken or past 65535).
                    "--cluster-port",
                    str(free_port()),
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                    "--appendonly",
                    "no",
                ),
            )
            for i in range(primaries * (1 + replicas))
        ]
        self.replicas = replicas

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:3])

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed")
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-yes", *self._replicas_args],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok()

    @property
    def _replicas_args(self) -> list[str]:
        return ["--cluster-replicas", str(self.replicas)]

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=5)

    def wait_ok(self, timeout_s: float = 60.0) -> None:
        """Until every live node says the cluster is ok and sees every slot served."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self._node_ok(node) for node in self.nodes if node.process is not None):
                return
            time.sleep(0.1)
        raise TimeoutError("the Redis Cluster did not become ok")

    def _node_ok(self, node: RedisServer) -> bool:
        with self.client(node.port) as client:
            try:
                info = client.execute_command("CLUSTER INFO")
            except redis.RedisError:
                return False
        # redis-py parses the reply into a dict of strings.
        return info.get("cluster_state") == "ok" and str(info.get("cluster_slots_ok")) == "16384"

    def owner(self, key: str) -> RedisServer:
        """The primary that serves ``key``'s slot now."""
        slot = key_slot(key.encode())
        for node in self.nodes:
            if node.process is None:
                continue
            with self.client(node.port) as client:
                for first, last, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                    if first <= slot <= last:
                        return self._by_port(int(primary[1]))
        raise LookupError(f"no node serves slot {slot}")

    def _by_port(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def node_id(self, node: RedisServer) -> str:
        with self.client(node.port) as client:
            return str(client.execute_command("CLUSTER MYID"))

    def primaries(self) -> list[RedisServer]:
        out = []
        for node in self.nodes:
            if node.process is None:
                continue
            with self.client(node.port) as client:
                if client.info("replication")["role"] == "master":
                    out.append(node)
        return out

    def replica_of(self, primary: RedisServer) -> RedisServer:
        with self.client(primary.port) as client:
            replicas = client.info("replication")
        port = int(replicas["slave0"]["port"])
        return self._by_port(port)

    def migrate_slot(self, key: str, target: RedisServer, *, batch: int = 1) -> None:
        """Move ``key``'s slot to ``target`` as ``redis-cli --cluster reshard`` does:
        IMPORTING/MIGRATING, MIGRATE ``batch`` keys at a time, then SETSLOT NODE."""
        source = self.begin_migration(key, target)
        slot = key_slot(key.encode())
        with self.client(source.port) as src:
            while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, batch):
                self.move_keys(source, target, keys)
                time.sleep(0.05)  # let commands meet the slot half moved
        self.end_migration(key, target)

    def begin_migration(self, key: str, target: RedisServer) -> RedisServer:
        """Mark ``key``'s slot MIGRATING on its owner (returned), IMPORTING on ``target``."""
        slot, source = key_slot(key.encode()), self.owner(key)
        source_id, target_id = self.node_id(source), self.node_id(target)
        with self.client(source.port) as src, self.client(target.port) as dst:
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        return source

    def move_keys(self, source: RedisServer, target: RedisServer, keys: list[str]) -> None:
        with self.client(source.port) as src:
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)

    def end_migration(self, key: str, target: RedisServer) -> None:
        """Give ``key``'s slot to ``target`` on every primary."""
        slot, target_id = key_slot(key.encode()), self.node_id(target)
        for node in self.primaries():
            with self.client(node.port) as client:
                client.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)

    def failover(self, primary: RedisServer) -> RedisServer:
        """CLUSTER FAILOVER on ``primary``'s replica; the new primary, once serving."""
        replica = self.replica_of(primary)
        with self.client(replica.port) as client:
            client.execute_command("CLUSTER FAILOVER")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with self.client(replica.port) as client:
                if client.info("replication")["role"] == "master":
                    self.wait_ok()
                    return replica
            time.sleep(0.1)
        raise TimeoutError("the replica did not take over")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
