"""Driving a real cluster from tests: kubectl and helm as subprocesses, port-forwards, polling.

Everything here shells out to the tools a platform engineer uses, so the end-to-end suite
checks exactly what `helm install` and `kubectl apply` do on kind or k3d.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

COMMAND_TIMEOUT_S = 300.0


def missing_tools() -> list[str]:
    return [tool for tool in ("kubectl", "helm") if shutil.which(tool) is None]


def cluster_reachable() -> str | None:
    """None when kubectl reaches a cluster, else why not (for the skip reason)."""
    try:
        result = subprocess.run(
            ["kubectl", "version", "--request-timeout=5s", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "kubectl version timed out"
    if result.returncode != 0 or "serverVersion" not in result.stdout:
        return f"no cluster reachable: {result.stderr.strip()[:200]}"
    return None


def run(*args: str, stdin: str | None = None, timeout_s: float = COMMAND_TIMEOUT_S) -> str:
    """Run a command; its stdout, or an AssertionError carrying its stderr."""
    result = subprocess.run(
        list(args), input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def kubectl_json(*args: str) -> Any:
    return json.loads(run("kubectl", *args, "-o", "json"))


def apply(obj: dict[str, Any]) -> None:
    run("kubectl", "apply", "-f", "-", stdin=json.dumps(obj))


def wait_until(
    check: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 2.0
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; last: {last!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def port_forward(namespace: str, target: str, remote_port: int) -> Iterator[int]:
    """``kubectl port-forward`` to ``target`` (e.g. ``svc/redis``); yields the local port."""
    local = free_port()
    process = subprocess.Popen(
        ["kubectl", "-n", namespace, "port-forward", target, f"{local}:{remote_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: process.poll() is None and _accepts(local),
            30,
            f"port-forward to {target}",
            interval_s=0.2,
        )
        yield local
    finally:
        process.terminate()
        process.wait(timeout=10)


def deployment_replicas(
    namespace: str, name: str, kind: str = "deployment"
) -> tuple[int, int] | None:
    """(spec.replicas, status.readyReplicas) of a Deployment (or another ``kind`` of
    workload), None while it does not exist."""
    result = subprocess.run(
        ["kubectl", "-n", namespace, "get", kind, name, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        return None
    deployment = json.loads(result.stdout)
    return (
        int(deployment["spec"].get("replicas") or 0),
        int(deployment.get("status", {}).get("readyReplicas") or 0),
    )
