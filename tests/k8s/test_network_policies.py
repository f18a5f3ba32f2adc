"""NetworkPolicies: workers and the producer reach Redis and DNS and nothing else; the
operator also reaches the API server. Checked by evaluating the shipped policies the way
the NetworkPolicy API defines them (rules are ORed; a peer's selectors are ANDed; no
namespaceSelector means the policy's own namespace)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest
from k8s.objects import MANIFESTS, Obj, kustomize_build, render_chart

from jobqueue.operator.deployment import worker_labels

NAMESPACE = "jobqueue"


@dataclass(frozen=True)
class Endpoint:
    """A pod (labels, namespace) or an address outside the cluster, and a port."""

    port: int
    protocol: str = "TCP"
    labels: dict[str, str] = field(default_factory=dict)
    namespace: str | None = NAMESPACE
    ip: str = "10.244.0.99"


REDIS = Endpoint(6379, labels={"app.kubernetes.io/name": "redis"})
DNS = Endpoint(53, "UDP", {"k8s-app": "kube-dns"}, "kube-system")
API_SERVER = Endpoint(443, namespace=None, ip="10.96.0.1")
ELSEWHERE = [
    Endpoint(6380, labels={"app.kubernetes.io/name": "redis"}),
    Endpoint(80, labels={"app": "web"}),
    Endpoint(443, namespace=None, ip="93.184.216.34"),
    Endpoint(5432, labels={"app": "postgres"}, namespace="db"),
]


def _labels_match(selector: Obj, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _peer_matches(peer: Obj, target: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return ipaddress.ip_address(target.ip) in ipaddress.ip_network(peer["ipBlock"]["cidr"])
    if target.namespace is None:
        return False  # not a pod: only an ipBlock can match it
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": target.namespace}
        if not _labels_match(peer["namespaceSelector"], namespace_labels):
            return False
    elif target.namespace != policy_namespace:
        return False
    return _labels_match(peer.get("podSelector") or {}, target.labels)


def _port_matches(port: Obj, target: Endpoint) -> bool:
    return port.get("protocol", "TCP") == target.protocol and port.get("port") == target.port


def allows(policy: Obj, direction: str, target: Endpoint) -> bool:
    """Whether ``policy`` lets its pods talk to (egress) or hear from (ingress) ``target``."""
    peers_key = "to" if direction == "egress" else "from"
    namespace = policy["metadata"]["namespace"]
    for rule in policy["spec"].get(direction) or []:
        peers = rule.get(peers_key)
        if peers and not any(_peer_matches(p, target, namespace) for p in peers):
            continue
        ports = rule.get("ports")
        if ports and not any(_port_matches(p, target) for p in ports):
            continue
        return True
    return False


def policy_for(objects: list[Obj], pod_labels: dict[str, str]) -> Obj:
    (policy,) = [
        obj
        for obj in objects
        if obj["kind"] == "NetworkPolicy"
        and obj["metadata"]["namespace"] == NAMESPACE
        and _labels_match(obj["spec"]["podSelector"], pod_labels)
        and obj["spec"]["podSelector"]
    ]
    return policy


def shipped() -> dict[str, list[Obj]]:
    return {
        "chart": render_chart({"producer": {"enabled": True}}),
        "manifests": kustomize_build(MANIFESTS / "operator")
        + kustomize_build(MANIFESTS / "producer"),
    }


def _pod_labels(objects: list[Obj], component: str) -> dict[str, str]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet") and obj["metadata"]["name"].endswith(
            f"-{component}"
        ):
            labels: dict[str, str] = obj["spec"]["template"]["metadata"]["labels"]
            return labels
    raise AssertionError(f"no {component} workload")


@pytest.mark.parametrize("source", ["chart", "manifests"])
def test_workers_and_the_producer_reach_redis_and_dns_and_nothing_else(source: str) -> None:
    objects = shipped()[source]
    pods = {"worker": worker_labels("demo"), "producer": _pod_labels(objects, "producer")}
    for name, labels in pods.items():
        policy = policy_for(objects, labels)
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}, name
        assert allows(policy, "egress", REDIS), name
        assert allows(policy, "egress", DNS), name
        for target in [API_SERVER, *ELSEWHERE]:
            assert not allows(policy, "egress", target), (name, target)


@pytest.mark.parametrize("source", ["chart", "manifests"])
def test_the_operator_also_reaches_the_api_server(source: str) -> None:
    objects = shipped()[source]
    policy = policy_for(objects, _pod_labels(objects, "operator"))
    for target in (REDIS, DNS, API_SERVER):
        assert allows(policy, "egress", target), target
    assert not allows(policy, "egress", ELSEWHERE[1])


@pytest.mark.parametrize("source", ["chart", "manifests"])
def test_pods_accept_connections_only_on_the_ports_they_serve(source: str) -> None:
    objects = shipped()[source]
    served = {
        "worker": (worker_labels("demo"), 8081),
        "producer": (_pod_labels(objects, "producer"), 8080),
        "operator": (_pod_labels(objects, "operator"), 8080),
    }
    caller = Endpoint(0, labels={"app": "prometheus"}, namespace="monitoring")
    for name, (labels, port) in served.items():
        policy = policy_for(objects, labels)
        assert allows(policy, "ingress", Endpoint(port, labels=caller.labels)), name
        assert not allows(policy, "ingress", Endpoint(22, labels=caller.labels)), name


def test_the_checker_sees_an_open_policy_as_open() -> None:
    # a policy with an empty egress rule allows everything: the checks above would fail
    policy = {"metadata": {"namespace": NAMESPACE}, "spec": {"egress": [{}]}}
    assert all(allows(policy, "egress", target) for target in ELSEWHERE)


def test_the_helm_test_pod_reaches_redis_the_operator_and_the_producer_only() -> None:
    # given scrapes and API calls limited to chosen peers
    monitoring = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    values = {
        "producer": {"enabled": True},
        "networkPolicy": {"metricsIngressFrom": [monitoring], "producerIngressFrom": [monitoring]},
    }
    objects = render_chart(values)
    test_labels = _test_pod_labels(objects)
    operator = Endpoint(8080, labels=_pod_labels(objects, "operator"))
    producer = Endpoint(8080, labels=_pod_labels(objects, "producer"))
    # then the test pod may call Redis, DNS, the operator's and the producer's ports
    policy = policy_for(objects, test_labels)
    for target in (REDIS, DNS, operator, producer):
        assert allows(policy, "egress", target), target
    for target in [API_SERVER, *ELSEWHERE]:
        assert not allows(policy, "egress", target), target
    # and the operator and the producer let it in, while other pods stay out
    caller = Endpoint(8080, labels=test_labels)
    stranger = Endpoint(8080, labels={"app": "web"})
    for server in (operator, producer):
        server_policy = policy_for(objects, server.labels)
        assert allows(server_policy, "ingress", caller), server.labels
        assert not allows(server_policy, "ingress", stranger), server.labels


def _test_pod_labels(objects: list[Obj]) -> dict[str, str]:
    (pod,) = [obj for obj in objects if obj["kind"] == "Pod"]
    labels: dict[str, str] = pod["metadata"]["labels"]
    return labels


SENTINEL_URL = "redis+sentinel://:pw@redis-sentinel:26379/mymaster/0"
SENTINELS = Endpoint(26379, labels={"app.kubernetes.io/name": "redis"})


def test_with_a_sentinel_url_pods_reach_the_sentinels_and_the_master() -> None:
    values = {"producer": {"enabled": True}, "redis": {"url": SENTINEL_URL, "sentinelPort": 26379}}
    objects = render_chart(values)
    [secret] = [
        o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"].endswith("redis")
    ]
    assert secret["stringData"]["url"] == SENTINEL_URL
    for labels in (worker_labels("demo"), _pod_labels(objects, "producer")):
        policy = policy_for(objects, labels)
        assert allows(policy, "egress", REDIS)
        assert allows(policy, "egress", SENTINELS)
        assert not allows(policy, "egress", ELSEWHERE[0])
    # Without Sentinel the port stays closed.
    policy = policy_for(render_chart({"producer": {"enabled": True}}), worker_labels("demo"))
    assert not allows(policy, "egress", SENTINELS)


def test_a_sentinel_url_without_the_sentinel_port_fails_the_install() -> None:
    with pytest.raises(Exception, match=r"redis\.sentinelPort"):
        render_chart({"redis": {"url": SENTINEL_URL}})
