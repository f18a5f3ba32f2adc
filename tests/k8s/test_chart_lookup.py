"""What the chart reads from the cluster (Helm's `lookup`), rendered by real Helm against the
Kubernetes API emulator over HTTP: the producer's generated token survives upgrades."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import helm_python as helm
from k8s.objects import NAMESPACE, RELEASE, chart, load_documents
from support.kube_emulator import SECRETS, KubeEmulator, start_emulator

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{{name: emulator, cluster: {{server: "{url}"}}}}]
users: [{{name: user, user: {{token: test}}}}]
contexts: [{{name: test, context: {{cluster: emulator, user: user, namespace: {namespace}}}}}]
current-context: test
"""
SECRET_NAME = f"{RELEASE}-jobqueue-producer-auth"


def token_rendered_against(kube: KubeEmulator, values: dict[str, Any], *, upgrade: bool) -> str:
    """The producer token of a cluster-aware render (`helm install`/`upgrade`, not template)."""
    kubeconfig = KUBECONFIG.format(url=kube.url, namespace=NAMESPACE)
    with helm.Config(namespace=NAMESPACE, kubeconfig_content=kubeconfig) as config:
        rendered = config.render(
            chart(),
            values,
            name=RELEASE,
            namespace=NAMESPACE,
            is_install=not upgrade,
            is_upgrade=upgrade,
        )
    (secret,) = load_documents(rendered["jobqueue/templates/producer-secret.yaml"])
    return base64.b64decode(secret["data"]["tokens"]).decode()


async def test_a_generated_producer_token_is_kept_on_upgrade() -> None:
    values = {"producer": {"enabled": True}}
    async for kube in start_emulator():
        # given an install that generated a token, stored in the cluster as Helm would
        installed = await asyncio.to_thread(token_rendered_against, kube, values, upgrade=False)
        encoded = base64.b64encode(installed.encode()).decode()
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET_NAME}}
        await kube.create(SECRETS, NAMESPACE, {**secret, "data": {"tokens": encoded}})
        # when the release is upgraded (twice), then the token is the installed one
        for _ in range(2):
            upgraded = await asyncio.to_thread(token_rendered_against, kube, values, upgrade=True)
            assert upgraded == installed
        assert len(installed) == 48
        return


async def test_without_a_secret_in_the_cluster_a_new_token_is_generated() -> None:
    async for kube in start_emulator():
        values = {"producer": {"enabled": True}}
        first = await asyncio.to_thread(token_rendered_against, kube, values, upgrade=False)
        second = await asyncio.to_thread(token_rendered_against, kube, values, upgrade=False)
        assert first != second
        return
