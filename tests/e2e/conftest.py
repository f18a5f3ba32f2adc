"""The end-to-end suite's cluster: opt-in (``--with-e2e``), and skipped with the reason when
kubectl, helm, a reachable cluster or the image under test is missing.

Run on kind (or k3d) with the image loaded into the cluster:

    kind create cluster --name jobqueue
    docker build -t jobqueue:e2e . && kind load docker-image jobqueue:e2e --name jobqueue
    JOBQUEUE_E2E_IMAGE=jobqueue:e2e .venv/bin/pytest tests/e2e --with-e2e

The suite installs into the ``jobqueue`` namespace (manifests/namespace.yaml, which enforces
Pod Security "restricted") and removes what it installed afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e.cluster import cluster_reachable, missing_tools, run, wait_until

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "jobqueue"
RELEASE = "e2e"
TOKEN = "e2e-token-0123456789abcdef"  # a throwaway cluster's, not a secret


@dataclass(frozen=True)
class Install:
    """What the session installed: where, under which release, with which image."""

    namespace: str
    release: str
    image: str
    token: str

    @property
    def producer_service(self) -> str:
        return f"svc/{self.release}-jobqueue-producer"


@pytest.fixture(scope="session")
def e2e_image() -> str:
    tools = missing_tools()
    if tools:
        pytest.skip(f"end-to-end tests need {', '.join(tools)} on PATH")
    unreachable = cluster_reachable()
    if unreachable:
        pytest.skip(f"end-to-end tests need a kind/k3d cluster: {unreachable}")
    image = os.environ.get("JOBQUEUE_E2E_IMAGE", "")
    if not image:
        pytest.skip(
            "set JOBQUEUE_E2E_IMAGE to an image the cluster can run "
            "(docker build -t jobqueue:e2e . && kind load docker-image jobqueue:e2e)"
        )
    return image


def _helm_values(image: str) -> list[str]:
    repository, _, tag = image.rpartition(":")
    return [
        f"image.repository={repository}",
        f"image.tag={tag}",
        "image.pullPolicy=IfNotPresent",
        f"redis.url=redis://redis.{NAMESPACE}.svc.cluster.local:6379/0",
        "producer.enabled=true",
        "producer.replicas=1",
        f"producer.auth.tokens={{{TOKEN}}}",
        "tests.stream=jobs:work",  # the sample JobQueue serves it: helm test runs a job
        "tests.timeoutSeconds=280",
    ]


@pytest.fixture(scope="session")
def installed(e2e_image: str) -> Iterator[Install]:
    """Namespace, throwaway Redis and the chart (operator + producer), ready."""
    run("kubectl", "apply", "-f", str(ROOT / "manifests" / "namespace.yaml"))
    run("kubectl", "apply", "-k", str(ROOT / "manifests" / "dev"))
    run("kubectl", "-n", NAMESPACE, "rollout", "status", "deploy/redis", "--timeout=180s")
    sets = [arg for value in _helm_values(e2e_image) for arg in ("--set", value)]
    run(
        "helm", "upgrade", "--install", RELEASE, str(ROOT / "charts" / "jobqueue"),
        "--namespace", NAMESPACE, "--wait", "--timeout", "5m", *sets,
    )  # fmt: skip
    wait_until(
        lambda: "jobqueues.jobqueue.dev" in run("kubectl", "get", "crd", "-o", "name"),
        60,
        "the JobQueue CRD",
    )
    yield Install(NAMESPACE, RELEASE, e2e_image, TOKEN)
    run("kubectl", "-n", NAMESPACE, "delete", "jobqueues", "--all", "--wait=true", "--timeout=120s")
    run("helm", "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    run("kubectl", "delete", "-k", str(ROOT / "manifests" / "dev"), "--ignore-not-found")
