"""The worker Deployment a JobQueue owns, built from its spec (pure, no I/O).

The pods run ``jobqueue worker APP_REF`` configured by environment (docs/internals.md),
probe the worker's ``/healthz`` and ``/readyz`` on port 8081, get ``POD_NAME`` from the
downward API (it names their Redis consumer, which is how dead consumers are found),
mount no ServiceAccount token, and run restricted: non-root, read-only root filesystem,
no capabilities, no privilege escalation, the runtime's seccomp profile.
"""

from __future__ import annotations

from typing import Any

from jobqueue.core.errors import ConfigError
from jobqueue.operator.spec import API_VERSION, KIND, JobQueueSpec

WORKER_CONTAINER = "worker"
WORKER_HTTP_PORT = 8081
STOP_MARGIN_S = 10
"""Seconds between the worker's own drain deadline and the kubelet's SIGKILL."""
MANAGED_BY = "jobqueue-operator"


def deployment_name(jobqueue: str) -> str:
    """Name of the worker Deployment of the JobQueue ``jobqueue``."""
    return f"{jobqueue}-worker"


def selector_labels(jobqueue: str) -> dict[str, str]:
    """Labels that select the worker pods of one JobQueue (immutable once created)."""
    return {
        "app.kubernetes.io/name": "jobqueue-worker",
        "app.kubernetes.io/instance": jobqueue,
    }


def worker_labels(jobqueue: str) -> dict[str, str]:
    return {
        **selector_labels(jobqueue),
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/part-of": "jobqueue",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def owner_reference(jobqueue: str, uid: str) -> dict[str, Any]:
    """Makes the Deployment garbage-collected with its JobQueue."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": jobqueue,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def redis_url_env(spec: JobQueueSpec) -> dict[str, Any]:
    """``REDIS_URL`` from the spec's URL or Secret reference."""
    ref = spec.redis.secret_ref
    if ref is not None:
        return {
            "name": "REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
        }
    if spec.redis.url is None:
        raise ConfigError("in a cluster, spec needs redis.url or redis.secretRef")
    return {"name": "REDIS_URL", "value": spec.redis.url}


def worker_env(spec: JobQueueSpec) -> list[dict[str, Any]]:
    """The worker container's environment: the queue's settings, then the user's extras."""
    grace_s = max(int(spec.job_timeout_seconds), spec.grace_period_s - STOP_MARGIN_S)
    own = {
        "JOBQUEUE_STREAM": spec.stream,
        "JOBQUEUE_GROUP": spec.group,
        "JOBQUEUE_DEAD_STREAM": spec.dead_letter_stream,
        "JOBQUEUE_CONCURRENCY": str(spec.worker.concurrency),
        "JOBQUEUE_VISIBILITY_TIMEOUT_S": f"{spec.visibility_timeout_seconds:g}",
        "JOBQUEUE_JOB_TIMEOUT_S": f"{spec.job_timeout_seconds:g}",
        "JOBQUEUE_MAX_ATTEMPTS": str(spec.retry.max_attempts),
        "JOBQUEUE_BACKOFF_BASE_S": f"{spec.retry.backoff.base_seconds:g}",
        "JOBQUEUE_BACKOFF_CAP_S": f"{spec.retry.backoff.cap_seconds:g}",
        "JOBQUEUE_MAX_DELIVERIES": str(spec.max_deliveries),
        "JOBQUEUE_GRACE_PERIOD_S": str(grace_s),
        "JOBQUEUE_WORKER_HTTP_PORT": str(WORKER_HTTP_PORT),
    }
    env: list[dict[str, Any]] = [redis_url_env(spec)]
    env += [{"name": k, "value": v} for k, v in own.items()]
    env.append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    reserved = {item["name"] for item in env}
    for extra in spec.worker.env:
        if extra.name not in reserved:
            env.append(extra.model_dump(by_alias=True, exclude_none=True))
    return env


def _probe(path: str, period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period_s,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def worker_container(spec: JobQueueSpec) -> dict[str, Any]:
    worker = spec.worker
    return {
        "name": WORKER_CONTAINER,
        "image": worker.image,
        "imagePullPolicy": worker.image_pull_policy,
        "args": ["worker", worker.app],
        "env": worker_env(spec),
        "ports": [{"name": "http", "containerPort": WORKER_HTTP_PORT, "protocol": "TCP"}],
        "startupProbe": _probe("/healthz", 2, 30),
        "livenessProbe": _probe("/healthz", 10, 3),
        "readinessProbe": _probe("/readyz", 5, 2),
        "resources": worker.resources.model_dump(by_alias=True),
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def build_deployment(
    jobqueue: str, namespace: str, uid: str, spec: JobQueueSpec, replicas: int
) -> dict[str, Any]:
    """The whole Deployment object for ``kubectl apply``-like creation or server-side apply."""
    labels = worker_labels(jobqueue)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(jobqueue),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(jobqueue, uid)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(jobqueue)},
            # Surge, never take a pod away before its replacement: a draining pod keeps
            # its in-flight jobs until the grace period ends.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels, "annotations": dict(spec.worker.pod_annotations)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "imagePullSecrets": [{"name": n} for n in spec.worker.image_pull_secrets],
                    "nodeSelector": dict(spec.worker.node_selector),
                    "terminationGracePeriodSeconds": spec.grace_period_s,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [worker_container(spec)],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }
