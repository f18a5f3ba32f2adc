"""The Tiltfile, evaluated without Tilt (not installed here): Tilt's builtins are replaced by
recorders, then what it would build, deploy and sync is checked against the repository.

Starlark is a subset of Python, so the Tiltfile runs as Python; the recorders capture the
arguments of each Tilt call, and the chart is rendered with real Helm from the same
``--set`` values `helm()` would pass.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from k8s.objects import (
    ROOT,
    Obj,
    crd_objects,
    kustomize_build,
    pod_templates,
    render_chart,
    validate_object,
)
from k8s.pod_security import restricted_violations

from jobqueue.worker.app import load_app

TILT_CONSTANTS = ("TRIGGER_MODE_MANUAL", "TRIGGER_MODE_AUTO")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "JobQueue")


class TiltCalls:
    """Every call the Tiltfile makes, by builtin name, as (args, kwargs)."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = defaultdict(list)

    def recorder(self, name: str, returns: Any = None) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls[name].append((args, kwargs))
            return returns if returns is not None else (name, args, kwargs)

        return record


class TiltOs:
    """Tilt's ``os`` module as the Tiltfile uses it: ``getenv`` with no variable set."""

    @staticmethod
    def getenv(name: str, default: str = "") -> str:
        return default


def evaluate_tiltfile() -> TiltCalls:
    tilt = TiltCalls()
    names = [
        "load",
        "allow_k8s_contexts",
        "docker_build",
        "docker_build_with_restart",
        "k8s_kind",
        "k8s_yaml",
        "k8s_resource",
        "kustomize",
        "helm",
        "local_resource",
        "sync",
        "run",
        "fall_back_on",
    ]
    namespace: dict[str, Any] = {name: tilt.recorder(name) for name in names}
    namespace.update({name: name for name in TILT_CONSTANTS})
    namespace["os"] = TiltOs()
    exec(compile((ROOT / "Tiltfile").read_text(), "Tiltfile", "exec"), namespace)
    return tilt


TILT = evaluate_tiltfile()


def load_app_from(folder: Path, ref: str) -> Any:
    """The worker app ``ref`` of a user's app folder, imported as the worker would."""
    sys.path.insert(0, str(folder))
    try:
        return load_app(ref)
    finally:
        sys.path.remove(str(folder))


def _helm_call() -> tuple[tuple[Any, ...], dict[str, Any]]:
    ((args, kwargs),) = TILT.calls["helm"]
    return args, kwargs


def tilt_chart_values() -> dict[str, Any]:
    """The values `helm(..., set=[...])` passes, parsed by Helm's own --set parser."""
    _, kwargs = _helm_call()
    return helm.parse_set_string(",".join(kwargs["set"]))


def tilt_objects() -> list[Obj]:
    args, kwargs = _helm_call()
    assert (ROOT / args[0]).resolve() == (ROOT / "charts" / "jobqueue").resolve()
    return render_chart(tilt_chart_values(), namespace=kwargs["namespace"], release=kwargs["name"])


def test_the_tilt_values_pass_the_chart_schema_and_render_valid_objects() -> None:
    for obj in tilt_objects():
        validate_object(obj)


def test_the_dev_redis_comes_from_the_kustomize_dev_directory() -> None:
    ((args, _),) = TILT.calls["kustomize"]
    assert kustomize_build(ROOT / args[0])


def test_live_update_syncs_existing_source_folders_into_the_installed_package() -> None:
    ((args, kwargs),) = TILT.calls["docker_build_with_restart"]
    assert args[0] == tilt_chart_values()["image"]["repository"]
    assert kwargs["entrypoint"] == ["jobqueue"]
    syncs = TILT.calls["sync"]
    assert len(syncs) == 6
    for (local, remote), _ in syncs:
        assert (ROOT / local / "__init__.py").is_file(), local
        assert remote.startswith("/opt/venv/lib/python3.11/site-packages/jobqueue/")
        assert remote.rsplit("/", 1)[1] == local.rsplit("/", 1)[1]


def test_the_workers_run_the_user_app_built_from_the_jobqueue_base_image() -> None:
    (base_args, base_kwargs), (app_args, app_kwargs) = TILT.calls["docker_build"]
    # the base: this repository's runtime image
    assert (base_args, base_kwargs["target"]) == (("jobqueue-worker-base", "."), "runtime")
    # the app: the user's folder (examples/myapp by default), FROM that base
    app_dir = ROOT / app_args[1]
    assert app_dir == ROOT / "examples" / "myapp"
    assert app_kwargs["dockerfile"] == app_args[1] + "/Dockerfile"
    assert app_kwargs["build_args"] == {"JOBQUEUE_IMAGE": base_args[0]}
    from_lines = [line for line in (app_dir / "Dockerfile").read_text().splitlines()
                  if line.startswith("FROM ${JOBQUEUE_IMAGE}")]  # fmt: skip
    assert from_lines
    # the JobQueue runs it, and Tilt writes each new tag into its spec.worker.image
    (queue,) = tilt_chart_values()["jobQueues"]
    assert queue["spec"]["worker"]["image"] == app_args[0]
    module = queue["spec"]["worker"]["app"].split(":")[0]
    assert (app_dir / f"{module}.py").is_file()
    ((kind_args, kind_kwargs),) = TILT.calls["k8s_kind"]
    assert kind_args == ("JobQueue",)
    assert kind_kwargs["image_json_path"] == "{.spec.worker.image}"


def test_the_burst_button_posts_a_job_of_the_apps_own_type() -> None:
    (queue,) = tilt_chart_values()["jobQueues"]
    app = load_app_from(ROOT / "examples" / "myapp", queue["spec"]["worker"]["app"])
    [button] = [
        kw["cmd"] for args, kw in TILT.calls["local_resource"] if args[0] == "enqueue-burst"
    ]
    posted = json.loads(button.split("-d '", 1)[1].split("'", 1)[0])
    assert posted["type"] in app.handlers


def test_live_update_keeps_every_pod_restricted() -> None:
    pods = list(pod_templates(tilt_objects()))
    assert len(pods) == 3  # operator, producer, helm test
    for name, pod in pods:
        assert restricted_violations(pod) == [], name


@pytest.mark.parametrize("call", TILT.calls["k8s_resource"], ids=lambda c: str(c[0] or c[1]))
def test_every_object_a_tilt_resource_names_exists(call: Any) -> None:
    args, kwargs = call
    deployed = tilt_objects() + kustomize_build(ROOT / "manifests" / "dev")
    known = {f"{o['metadata']['name']}:{o['kind'].lower()}" for o in deployed}
    known |= {f"{crd['metadata']['name']}:customresourcedefinition" for crd in crd_objects()}
    workloads = {o["metadata"]["name"] for o in deployed if o["kind"] in WORKLOAD_KINDS}
    if args:
        assert args[0] in workloads
    for selector in kwargs.get("objects", []):
        assert selector in known, selector
    for port in kwargs.get("port_forwards", []):
        local, remote = port.split(":")
        assert int(local) > 1024
        assert int(remote) > 0
