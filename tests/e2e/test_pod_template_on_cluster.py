"""The pod template on a real API server, driven with the official ``kubernetes`` client
(opt in with ``--with-e2e``; skipped without a cluster).

What only a real API server shows: the vendored PodTemplateSpec schema is admitted inside
the CRD, a wrongly typed template field is refused at admission, ``kubectl explain``
documents the template with Kubernetes' own text, and the worker Deployment the operator
builds from a template is accepted by the apps/v1 API (the pods need no image to run).
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e.test_operator_on_cluster import cluster, kubectl, running_operator
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from support.kube_emulator import eventually

from jobqueue.operator.scaler import OperatorContext
from jobqueue.operator.spec import GROUP, PLURAL, VERSION

pytestmark = pytest.mark.e2e
__all__ = ["cluster", "running_operator"]  # fixtures shared with the operator's e2e tests
TOLERATION = {"key": "batch", "operator": "Exists", "effect": "NoSchedule"}


def body(name: str, redis_url: str, template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "JobQueue",
        "metadata": {"name": name},
        "spec": {
            "redis": {"url": redis_url},
            "stream": f"{name}:work",
            "deadLetterStream": f"{name}:dead",
            "worker": {"image": "jobqueue:dev", "app": "jobqueue.worker.testing:app"},
            "podTemplate": template,
        },
    }


def api() -> client.CustomObjectsApi:
    config.load_kube_config()
    return client.CustomObjectsApi()


def test_the_api_server_refuses_a_badly_typed_template_field(cluster: str, redis_url: str) -> None:
    bad = body("badtemplate", redis_url, {"spec": {"tolerations": [{"key": 1}]}})
    with pytest.raises(ApiException) as refused:
        api().create_namespaced_custom_object(GROUP, VERSION, cluster, PLURAL, bad)
    assert refused.value.status == 422
    assert "tolerations" in str(refused.value.body)


def test_kubectl_explain_shows_kubernetes_own_documentation(cluster: str) -> None:
    out = kubectl("explain", "jobqueues.spec.podTemplate.spec.tolerations")
    assert "taint" in out


async def test_a_template_reaches_the_worker_deployment(
    cluster: str, running_operator: OperatorContext, redis_url: str
) -> None:
    template = {
        "metadata": {"labels": {"team": "payments"}},
        "spec": {
            "tolerations": [TOLERATION],
            "priorityClassName": "system-cluster-critical",
            "containers": [{"name": "worker", "resources": {"requests": {"cpu": "50m"}}}],
        },
    }
    api().create_namespaced_custom_object(
        GROUP, VERSION, cluster, PLURAL, body("placed", redis_url, template)
    )
    apps = client.AppsV1Api()

    def deployment() -> client.V1Deployment | None:
        try:
            return apps.read_namespaced_deployment("placed-worker", cluster)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    found = await eventually(deployment, timeout_s=60, what="the worker Deployment")
    pod = found.spec.template
    assert pod.metadata.labels["team"] == "payments"
    assert [t.key for t in pod.spec.tolerations or []] == ["batch"]
    assert pod.spec.containers[0].resources.requests == {"cpu": "50m"}
    assert pod.spec.automount_service_account_token is False

    # A toleration dropped from the template leaves the Deployment too (server-side apply
    # owns every field, the created ones included)
    patch = {"spec": {"podTemplate": {"spec": {"tolerations": None}}}}
    api().patch_namespaced_custom_object(GROUP, VERSION, cluster, PLURAL, "placed", patch)
    await eventually(
        lambda: (d := deployment()) is not None and not d.spec.template.spec.tolerations,
        timeout_s=60,
        what="the toleration removed from the Deployment",
    )
    api().delete_namespaced_custom_object(GROUP, VERSION, cluster, PLURAL, "placed")
