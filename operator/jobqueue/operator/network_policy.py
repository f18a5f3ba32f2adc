"""The NetworkPolicy a JobQueue may own for its worker pods, built from its spec (pure, no I/O).

With ``spec.networkPolicy.enabled`` the operator keeps one ``<name>-worker`` NetworkPolicy
beside the worker Deployment, owned by the JobQueue (garbage-collected with it). It
selects that queue's worker pods only, in the queue's own namespace, wherever that is, so
a cluster-wide operator limits workers in every namespace it serves:

- egress to Redis (``redisPeers``, else any address) on the port of the queue's Redis URL
  (behind Sentinel: the sentinels' ports and the master's, taken to be 6379 since the
  URL does not name it; any other goes in ``extraEgress``; in a Redis Cluster the seed
  nodes' ports, every node taken to listen on one of them), to the cluster DNS
  (``kube-dns`` pods, port 53), and to ``extraEgress``;
- ingress on the workers' metrics port only (from ``metricsFrom``, else any source).

Turning it off deletes the policy.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from jobqueue.core.cluster import SCHEMES as CLUSTER_SCHEMES
from jobqueue.core.cluster import ClusterUrl
from jobqueue.core.sentinel import SCHEMES as SENTINEL_SCHEMES
from jobqueue.core.sentinel import SentinelUrl
from jobqueue.operator.deployment import owner_reference, to_body
from jobqueue.operator.spec import JobQueueSpec
from jobqueue.operator.worker_container import WORKER_HTTP_PORT
from jobqueue.operator.worker_pod import selector_labels, worker_labels

DEFAULT_REDIS_PORT = 6379
DNS_PEER = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
"""CoreDNS and kube-dns pods, in any namespace (both carry this label)."""


def policy_name(jobqueue: str) -> str:
    """Name of the NetworkPolicy of the JobQueue ``jobqueue`` (as its Deployment's)."""
    return f"{jobqueue}-worker"


def redis_port(url: str) -> int | None:
    """The TCP port of a Redis URL (6379 when it names none); None for a unix socket."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return None
    if parts.scheme in SENTINEL_SCHEMES:
        return DEFAULT_REDIS_PORT  # the master's: the sentinels name it, the URL does not
    if parts.scheme in CLUSTER_SCHEMES:
        return ClusterUrl.parse(url).seeds[0][1]
    return parts.port or DEFAULT_REDIS_PORT


def redis_ports(url: str) -> list[int]:
    """Every TCP port the workers of a queue on ``url`` connect to (none for a socket):
    the server's, and behind Sentinel also the sentinels'."""
    port = redis_port(url)
    ports = [] if port is None else [port]
    if urlsplit(url).scheme in SENTINEL_SCHEMES:
        ports += sorted({p for _, p in SentinelUrl.parse(url).sentinels} - set(ports))
    if urlsplit(url).scheme in CLUSTER_SCHEMES:
        ports += sorted({p for _, p in ClusterUrl.parse(url).seeds} - set(ports))
    return ports


def _egress(spec: JobQueueSpec, ports: list[int]) -> list[dict[str, Any]]:
    settings = spec.network_policy
    rules: list[dict[str, Any]] = []
    if ports:
        redis: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": p} for p in ports]}
        if settings.redis_peers:
            redis["to"] = [dict(peer) for peer in settings.redis_peers]
        rules.append(redis)
    dns_ports = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    rules.append({"to": [DNS_PEER], "ports": dns_ports})
    rules.extend(dict(rule) for rule in settings.extra_egress)
    return rules


def build_network_policy(
    jobqueue: str, namespace: str, uid: str, spec: JobQueueSpec, redis_url: str
) -> dict[str, Any]:
    """The whole NetworkPolicy object, for creation or server-side apply."""
    ingress: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": WORKER_HTTP_PORT}]}
    if spec.network_policy.metrics_from:
        ingress["from"] = [dict(peer) for peer in spec.network_policy.metrics_from]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(jobqueue),
            "namespace": namespace,
            "labels": worker_labels(jobqueue),
            "ownerReferences": [to_body(owner_reference(jobqueue, uid))],
        },
        "spec": {
            "podSelector": {"matchLabels": selector_labels(jobqueue)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [ingress],
            "egress": _egress(spec, redis_ports(redis_url)),
        },
    }
