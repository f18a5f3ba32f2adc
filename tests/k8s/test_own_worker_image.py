"""From your handlers to a cluster: the example app under examples/myapp, its Dockerfile
FROM the jobqueue image, and the JobQueue that runs it.

No Docker engine here, so the image is checked as far as it can be without one: the
Dockerfiles are read statically (the example's final stage is the base image plus the
app in /app), the image's import path is reproduced (the app copied to a directory on
``PYTHONPATH``, the worker started elsewhere) and a real ``jobqueue worker`` runs the
app's jobs from there on a private Redis; the JobQueue sample passes the CRD schema and
the model, and the Deployment it yields passes Kubernetes' own schema.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import redis
import yaml
from k8s.dockerfile import stage_env, stages
from k8s.objects import ROOT
from support.records import sync_state
from support.redis_server import RedisServer

from jobqueue.core.client import Client
from jobqueue.core.keys import QueueKeys
from jobqueue.core.status import JobState
from jobqueue.operator.crd import crd_manifest
from jobqueue.operator.deployment import build_deployment
from jobqueue.operator.podschema import KUBERNETES_VERSION
from jobqueue.operator.spec import load_jobqueue
from jobqueue.operator.worker_pod import worker_pod

EXAMPLE = ROOT / "examples" / "myapp"
SAMPLE = EXAMPLE / "jobqueue.yaml"
JOBQUEUE = Path(sys.executable).with_name("jobqueue")


def example_stages() -> dict[str, list[str]]:
    return stages((EXAMPLE / "Dockerfile").read_text())


def test_the_base_image_puts_app_on_the_import_path_and_runs_jobqueue() -> None:
    assert stage_env("base")["PYTHONPATH"] == "/app"
    assert "mkdir /app" in " ".join(stages()["base"])
    assert 'ENTRYPOINT ["jobqueue"]' in stages()["base"]


def test_the_example_image_is_the_base_plus_the_app_running_as_the_base_user() -> None:
    final = list(example_stages().values())[-1]
    assert final[0] == "FROM ${JOBQUEUE_IMAGE}"
    assert "COPY myapp.py /app/" in final
    assert not [line for line in final if line.startswith("USER")]  # the base's 10001
    [cmd] = [line for line in final if line.startswith("CMD ")]
    sample = load_jobqueue(SAMPLE.read_text())
    assert json.loads(cmd[4:]) == ["worker", sample.spec.worker.app]
    # dependencies land in the image's own virtualenv, installed by the deps stage
    deps = example_stages()["deps"]
    assert "COPY --from=deps /opt/venv /opt/venv" in final
    assert any("--python /opt/venv/bin/python" in line for line in deps)
    assert (EXAMPLE / "requirements.txt").is_file()


def run_worker(app_dir: Path, cwd: Path, redis_url: str) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(app_dir),  # as the image's ENV PYTHONPATH=/app
        "REDIS_URL": redis_url,
        "JOBQUEUE_WORKER_HTTP_PORT": "0",
        "JOBQUEUE_STREAM": "myapp:work",
    }
    command = [str(JOBQUEUE), "worker", "myapp:app", "--burst"]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_worker_runs_the_example_app_from_the_images_import_path(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    # given the app copied where the image keeps it, and a worker started elsewhere
    app_dir, elsewhere = tmp_path / "app", tmp_path / "work"
    app_dir.mkdir()
    elsewhere.mkdir()
    shutil.copy(EXAMPLE / "myapp.py", app_dir / "myapp.py")
    with Client.from_url(own_redis.url, stream="myapp:work") as client:
        greet = client.enqueue("greet", {"name": "Ada"})
        flaky = client.enqueue("greet", {"name": "Bob", "flaky": True})
        summed = client.enqueue("checksum", {"text": "abc"})
        bad = client.enqueue("greet", {})

    run_worker(app_dir, elsewhere, own_redis.url)

    plain = redis.Redis.from_url(own_redis.url, decode_responses=True)
    keys = QueueKeys(stream="myapp:work")

    def state(job_id: str) -> Any:
        return sync_state(plain, job_id, keys)

    assert [state(j.job_id) for j in (greet, flaky, summed)] == [JobState.SUCCEEDED] * 3
    assert state(bad.job_id) == JobState.DEAD
    assert plain.hget(keys.status(flaky.job_id), "attempts") == "2"
    assert plain.hgetall("myapp:greetings") == {
        greet.job_id: "hello, Ada",
        flaky.job_id: "hello, Bob",
    }


def _int_or_string(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _int_or_string(v) for k, v in node.items()}
        if node.get("x-kubernetes-int-or-string"):
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return out
    if isinstance(node, list):
        return [_int_or_string(item) for item in node]
    return node


def test_the_sample_jobqueue_passes_the_crd_schema_and_yields_a_valid_deployment() -> None:
    document = yaml.safe_load(SAMPLE.read_text())
    schema = crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.Draft4Validator(_int_or_string(schema)).validate(document)

    spec = load_jobqueue(SAMPLE.read_text()).spec
    assert worker_pod("myapp", spec).conflicts == ()
    deployment = build_deployment("myapp", "jobqueue", "uid-1", spec, replicas=1)
    kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example.com/myapp:1.0"
    assert pod["serviceAccountName"] == "myapp"
    assert pod["automountServiceAccountToken"] is True
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert [s.name for s in spec.schedules] == ["nightly-checksum"]
    assert spec.disruption_budget is not None
