"""The worker NetworkPolicy a JobQueue may own (spec.networkPolicy), made by the real
operator against the Kubernetes API emulator and checked as the NetworkPolicy API defines."""

from __future__ import annotations

from typing import Any

from k8s.objects import validate_k8s
from k8s.test_network_policies import DNS, ELSEWHERE, Endpoint, allows
from support.kube_emulator import (
    DEPLOYMENTS,
    JOBQUEUES,
    NAMESPACE,
    NETWORK_POLICIES,
    KubeEmulator,
    apply,
    eventually,
    jobqueue,
)

from jobqueue.operator.network_policy import redis_port, redis_ports
from jobqueue.operator.scaler import OperatorContext
from jobqueue.operator.worker_pod import worker_labels

ON: dict[str, Any] = {"networkPolicy": {"enabled": True}}


def policy(kube: KubeEmulator, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
    return kube.get(NETWORK_POLICIES, namespace, f"{name}-worker")


def redis_at(port: int, namespace: str = NAMESPACE) -> Endpoint:
    return Endpoint(port, labels={"app.kubernetes.io/name": "redis"}, namespace=namespace)


async def test_an_enabled_policy_limits_the_workers_to_redis_and_dns(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    # given a JobQueue asking for a NetworkPolicy
    created = await apply(kube, jobqueue("limited", redis_url, **ON))
    found = await eventually(lambda: policy(kube, "limited"), what="network policy")
    validate_k8s(found)
    # then it is the queue's, selects its worker pods and no others
    [owner] = found["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("JobQueue", created["metadata"]["uid"])
    selector = found["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= worker_labels("limited").items()
    assert not selector.items() <= worker_labels("other").items()
    # and lets them reach Redis on its URL's port and DNS, nothing else
    port = redis_port(redis_url)
    assert port is not None
    for target in (redis_at(port), redis_at(port, "elsewhere"), DNS):
        assert allows(found, "egress", target), target
    for target in [redis_at(port + 1), *ELSEWHERE]:
        assert not allows(found, "egress", target), target
    # and be reached only on their metrics port
    assert allows(found, "ingress", Endpoint(8081, labels={"app": "prometheus"}))
    assert not allows(found, "ingress", Endpoint(22, labels={"app": "prometheus"}))


async def test_jobqueues_in_any_namespace_get_their_own_policy(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    # given the cluster-wide operator and a JobQueue outside the release's namespace
    await kube.create(JOBQUEUES, "team-b", jobqueue("elsewhere", redis_url, **ON))
    # then its workers are limited there too
    found = await eventually(lambda: policy(kube, "elsewhere", "team-b"), what="policy")
    assert found["metadata"]["namespace"] == "team-b"


async def test_the_policy_follows_the_spec_and_goes_with_the_jobqueue(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    await apply(kube, jobqueue("follows", redis_url, **ON))
    await eventually(lambda: policy(kube, "follows"), what="policy")
    # when a handler needs an API on 443 and Redis is named by a peer
    api = {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 443}]}
    peer = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}}}
    changed = {"networkPolicy": {"enabled": True, "extraEgress": [api], "redisPeers": [peer]}}
    await kube.patch_spec(JOBQUEUES, NAMESPACE, "follows", changed)
    found = await eventually(
        lambda: (
            len((policy(kube, "follows") or {}).get("spec", {}).get("egress", [])) == 3
            and policy(kube, "follows")
        ),
        what="policy with the extra rule",
    )
    port = redis_port(redis_url) or 0
    assert allows(found, "egress", Endpoint(443, namespace=None, ip="10.20.1.1"))
    assert allows(found, "egress", redis_at(port))
    assert not allows(found, "egress", redis_at(port, "elsewhere"))  # the peer, not anyone
    # when it is turned off, the policy goes
    await kube.patch_spec(JOBQUEUES, NAMESPACE, "follows", {"networkPolicy": {"enabled": False}})
    await eventually(lambda: policy(kube, "follows") is None, what="policy deleted")
    # and when turned on again and the JobQueue deleted, it goes with the Deployment
    await kube.patch_spec(JOBQUEUES, NAMESPACE, "follows", ON)
    await eventually(lambda: policy(kube, "follows"), what="policy again")
    await kube.delete(JOBQUEUES, NAMESPACE, "follows")
    await eventually(lambda: kube.get(DEPLOYMENTS, NAMESPACE, "follows-worker") is None)
    await eventually(lambda: policy(kube, "follows") is None, what="policy gone")


async def test_no_policy_unless_asked(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    await apply(kube, jobqueue("open", redis_url))
    await eventually(lambda: kube.get(DEPLOYMENTS, NAMESPACE, "open-worker"), what="deployment")
    assert policy(kube, "open") is None


def test_the_redis_port_comes_from_the_url() -> None:
    assert redis_port("redis://redis:6380/0") == 6380
    assert redis_port("rediss://:secret@redis.example.com/1") == 6379
    assert redis_port("unix:///run/redis.sock") is None


def test_behind_sentinel_workers_may_reach_the_sentinels_and_the_master() -> None:
    url = "redis+sentinel://:pw@s0:26379,s1:26379,s2:26380/mymaster/0"
    assert redis_ports(url) == [6379, 26379, 26380]
    assert redis_ports("redis://redis:6380/0") == [6380]
    assert redis_ports("unix:///run/redis.sock") == []


def test_in_a_cluster_workers_may_reach_every_seed_port() -> None:
    url = "redis+cluster://:pw@n0:7000,n1:7001,n2:7000"
    assert redis_ports(url) == [7000, 7001]
