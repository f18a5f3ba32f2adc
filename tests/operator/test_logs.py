"""``jobqueue operator --log-format json``: its own lines and Kopf's, one JSON object each."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import orjson
from support.kube_emulator import NAMESPACE, KubeEmulator, apply, eventually, jobqueue

JOBQUEUE = Path(sys.executable).with_name("jobqueue")


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emu", "cluster": {"server": server}}],
        "users": [{"name": "emu", "user": {}}],
        "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "emu"}}],
        "current-context": "emu",
    }
    path.write_bytes(orjson.dumps(config))  # JSON is YAML
    return path


def records(log_path: Path) -> list[dict[str, Any]]:
    lines = log_path.read_text().splitlines()
    return [orjson.loads(line) for line in lines if line.strip()]


async def test_kopf_lines_come_out_as_json_naming_their_jobqueue(
    kube: KubeEmulator, redis_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig(tmp_path, kube.url)), "POD_NAME": "op-0"}
    env.pop("JOBQUEUE_LOG_LEVEL", None)
    log_path = tmp_path / "operator.log"
    command = [str(JOBQUEUE), "operator", "--standalone", "--http-port", "0"]
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *command, "--log-format", "json", stderr=log, env=env
        )
    try:
        await apply(kube, jobqueue("emails", redis_url))

        def about_the_jobqueue() -> list[dict[str, Any]]:
            found = records(log_path)
            return [r for r in found if r.get("object", {}).get("name") == "emails"]

        lines = await eventually(about_the_jobqueue, 60, "a Kopf line about the JobQueue")
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 60)

    assert lines[0]["object"]["namespace"] == NAMESPACE
    everything = records(log_path)  # every line parses: nothing printed outside the format
    assert all(r["component"] == "operator" and r["pod"] == "op-0" for r in everything)
    assert any(r["logger"].startswith("kopf") for r in everything)
    assert all("settings" not in r for r in everything)
