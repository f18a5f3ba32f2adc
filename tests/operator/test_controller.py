"""The controller against a Kubernetes API emulator over HTTP and a real Redis.

Kopf runs in-process (see conftest); each test applies JobQueues as a user would and
watches what the operator does to Deployments, statuses, Events and Redis.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from redis.asyncio import Redis
from support.kube_emulator import (
    DEPLOYMENTS,
    JOBQUEUES,
    NAMESPACE,
    PODS,
    SECRETS,
    KubeEmulator,
    apply,
    eventually,
    jobqueue,
)
from support.redis_server import RedisServer, free_port

from jobqueue.operator.scaler import OperatorContext


def replicas_of(kube: KubeEmulator, name: str) -> int | None:
    deployment = kube.get(DEPLOYMENTS, NAMESPACE, f"{name}-worker")
    return None if deployment is None else int(deployment["spec"]["replicas"])


def condition(kube: KubeEmulator, name: str, kind: str) -> dict[str, Any] | None:
    body = kube.get(JOBQUEUES, NAMESPACE, name) or {}
    for cond in body.get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return dict(cond)
    return None


def event_reasons(kube: KubeEmulator, name: str) -> set[str]:
    return {e.get("reason", "") for e in kube.events(involved=name)}


async def enqueue(redis: Redis, stream: str, count: int) -> None:
    for i in range(count):
        await redis.xadd(stream, {"type": "noop", "payload": "{}", "id": f"job-{i}"})


async def test_applying_a_jobqueue_creates_its_owned_worker_deployment(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    created = await apply(kube, jobqueue("emails", redis_url, jobTimeoutSeconds=120))

    deployment: dict[str, Any] = await eventually(
        lambda: kube.get(DEPLOYMENTS, NAMESPACE, "emails-worker"), what="deployment"
    )
    [owner] = deployment["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("JobQueue", "emails")
    assert (owner["uid"], owner["controller"]) == (created["metadata"]["uid"], True)
    assert deployment["spec"]["replicas"] == 0  # minReplicas, nothing queued
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["terminationGracePeriodSeconds"] >= 120 + 30
    [container] = pod["containers"]
    assert container["args"] == ["worker", "acme.jobs:app"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["JOBQUEUE_STREAM"]["value"] == "emails:work"
    assert env["REDIS_URL"]["value"] == redis_url
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # And the consumer group exists for the workers to read with
    groups = await eventually(lambda: redis_client.xinfo_groups("emails:work"), what="group")
    assert [g["name"] for g in groups] == ["workers"]


@pytest.mark.slow
async def test_a_burst_raises_replicas_within_a_few_polls_and_draining_brings_them_to_zero(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    # Given a queue at zero replicas (lagPerReplica 10, maxReplicas 5, poll 0.2 s)
    await apply(kube, jobqueue("burst", redis_url))
    await eventually(lambda: replicas_of(kube, "burst") == 0, what="deployment at 0")
    await eventually(lambda: redis_client.xinfo_groups("burst:work"), what="group")

    # When 35 jobs arrive, then replicas go to 4 and the status and Events say so
    await enqueue(redis_client, "burst:work", 35)
    await eventually(lambda: replicas_of(kube, "burst") == 4, what="4 replicas")
    status = await eventually(
        lambda: (
            (kube.get(JOBQUEUES, NAMESPACE, "burst") or {}).get("status", {}).get("lag") == 35
            and kube.get(JOBQUEUES, NAMESPACE, "burst")["status"]
        ),  # type: ignore[index]
        what="status with lag 35",
    )
    assert (status["replicas"], status["desiredReplicas"], status["pending"]) == (4, 4, 0)
    assert status["observedGeneration"] == 1
    await eventually(lambda: "ScaledUp" in event_reasons(kube, "burst"), what="ScaledUp event")

    # When the workers take and acknowledge every job, replicas come back to zero
    taken = await redis_client.xreadgroup("workers", "burst-worker-a", {"burst:work": ">"})
    ids = [entry_id for _, entries in taken for entry_id, _ in entries]
    assert len(ids) == 35
    await redis_client.xack("burst:work", "workers", *ids)
    await eventually(lambda: replicas_of(kube, "burst") == 0, timeout_s=20, what="back to 0")
    assert "ScaledDown" in event_reasons(kube, "burst")


def replicas_metric(ctx: OperatorContext, name: str, kind: str) -> float | None:
    labels = {"namespace": NAMESPACE, "jobqueue": name, "kind": kind}
    return ctx.metrics.registry.get_sample_value("jobqueue_worker_replicas", labels)


async def test_metrics_report_ready_workers_and_a_scaling_pinned_at_max_replicas(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    # Given a queue allowed 2 workers (lagPerReplica 10) with a backlog of 50 jobs
    await apply(kube, jobqueue("pinned", redis_url, scaling={"maxReplicas": 2}))
    await eventually(lambda: replicas_of(kube, "pinned") == 0, what="deployment at 0")
    await eventually(lambda: redis_client.xinfo_groups("pinned:work"), what="group")
    await enqueue(redis_client, "pinned:work", 50)
    await eventually(lambda: replicas_of(kube, "pinned") == 2, what="2 replicas")
    # Then the load asks for more than the max: the alerts' gauge says so
    limited = {"namespace": NAMESPACE, "jobqueue": "pinned"}
    await eventually(
        lambda: operator.metrics.registry.get_sample_value("jobqueue_scaling_limited", limited),
        what="scaling limited = 1",
    )
    assert replicas_metric(operator, "pinned", "max") == 2
    assert replicas_metric(operator, "pinned", "ready") == 0  # no pod is ready yet

    # When the Deployment controller reports one ready pod, the operator's gauge follows
    await kube.patch_status(DEPLOYMENTS, NAMESPACE, "pinned-worker", {"readyReplicas": 1})
    await eventually(lambda: replicas_metric(operator, "pinned", "ready") == 1, what="1 ready")


async def test_a_single_job_wakes_a_queue_at_zero(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    await apply(kube, jobqueue("single", redis_url, scaling={"lagPerReplica": 1000}))
    await eventually(lambda: replicas_of(kube, "single") == 0, what="deployment at 0")
    await enqueue(redis_client, "single:work", 1)
    await eventually(lambda: replicas_of(kube, "single") == 1, what="woken to 1")


async def test_an_invalid_spec_gets_a_condition_and_an_event_while_others_are_served(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    # Given a JobQueue the API server's CEL rule would have refused (min > max) and a good one
    await apply(kube, jobqueue("broken", redis_url, scaling={"minReplicas": 3, "maxReplicas": 1}))
    await apply(kube, jobqueue("healthy", redis_url))

    ready = await eventually(lambda: condition(kube, "broken", "Ready"), what="Ready condition")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "minReplicas must be <= maxReplicas" in ready["message"]
    await eventually(lambda: "InvalidSpec" in event_reasons(kube, "broken"), what="event")
    assert kube.get(DEPLOYMENTS, NAMESPACE, "broken-worker") is None

    # Then the healthy one still scales
    await eventually(lambda: replicas_of(kube, "healthy") == 0, what="healthy deployment")
    await enqueue(redis_client, "healthy:work", 3)
    await eventually(lambda: replicas_of(kube, "healthy") == 1, what="healthy scaled")


async def test_unreachable_redis_is_a_condition_and_an_event(
    kube: KubeEmulator, operator: OperatorContext
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    await apply(kube, jobqueue("offline", nowhere))
    reachable = await eventually(
        lambda: condition(kube, "offline", "RedisReachable"), what="RedisReachable"
    )
    assert (reachable["status"], reachable["reason"]) == ("False", "RedisUnreachable")
    await eventually(lambda: "RedisUnreachable" in event_reasons(kube, "offline"), what="event")
    # The Deployment does not depend on Redis: it exists, at minReplicas
    await eventually(lambda: replicas_of(kube, "offline") == 0, what="deployment")


async def test_dead_consumers_are_removed_but_never_one_holding_pending_jobs(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    # Given three consumers: a live pod's, a gone pod's with nothing pending, and a gone
    # pod's still holding a job
    stream = "reap:work"
    await redis_client.xgroup_create(stream, "workers", id="0", mkstream=True)
    await enqueue(redis_client, stream, 3)
    for consumer in ("reap-worker-live", "reap-worker-gone", "reap-worker-busy"):
        await redis_client.xreadgroup("workers", consumer, {stream: ">"}, count=1)
    for consumer in ("reap-worker-live", "reap-worker-gone"):
        [entry] = await redis_client.xpending_range(stream, "workers", "-", "+", 1, consumer)
        await redis_client.xack(stream, "workers", entry["message_id"])
    pod = {
        "metadata": {"name": "reap-worker-live", "labels": {"app.kubernetes.io/instance": "reap"}}
    }
    await kube.create(PODS, NAMESPACE, pod)

    # When the operator runs for the JobQueue
    await apply(kube, jobqueue("reap", redis_url))

    # Then only the gone, idle consumer is removed
    async def consumers() -> set[str]:
        return {c["name"] for c in await redis_client.xinfo_consumers(stream, "workers")}

    await eventually(
        lambda: _without(consumers(), "reap-worker-gone"), what="gone consumer removed"
    )
    assert await consumers() == {"reap-worker-live", "reap-worker-busy"}
    [busy] = await redis_client.xpending_range(stream, "workers", "-", "+", 10, "reap-worker-busy")
    assert busy["times_delivered"] == 1


async def _without(names: Any, name: str) -> bool:
    return name not in await names


async def test_a_spec_change_rolls_out_and_keeps_the_replicas(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    await apply(kube, jobqueue("roll", redis_url))
    await enqueue(redis_client, "roll:work", 15)
    await eventually(lambda: replicas_of(kube, "roll") == 2, what="scaled to 2")

    await kube.patch_spec(JOBQUEUES, NAMESPACE, "roll", {"worker": {"image": "acme/jobs:2.0"}})

    def image() -> str:
        deployment = kube.get(DEPLOYMENTS, NAMESPACE, "roll-worker") or {}
        containers = deployment.get("spec", {}).get("template", {}).get("spec", {})["containers"]
        return str(containers[0]["image"])

    await eventually(lambda: image() == "acme/jobs:2.0", what="new image")
    assert replicas_of(kube, "roll") == 2
    await eventually(
        lambda: (
            (kube.get(JOBQUEUES, NAMESPACE, "roll") or {})
            .get("status", {})
            .get("observedGeneration")
            == 2
        ),
        what="observedGeneration 2",
    )


async def test_deleting_removes_the_deployment_and_keeps_streams_unless_told(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    await apply(kube, jobqueue("keep", redis_url))
    await apply(kube, jobqueue("purge", redis_url, retentionPolicy="Delete"))
    for name in ("keep", "purge"):
        await enqueue(redis_client, f"{name}:work", 2)
        await eventually(lambda n=name: replicas_of(kube, n) == 1, what=f"{name} scaled")

    for name in ("keep", "purge"):
        await kube.delete(JOBQUEUES, NAMESPACE, name)
    for name in ("keep", "purge"):
        await eventually(lambda n=name: kube.get(JOBQUEUES, NAMESPACE, n) is None, what="gone")
        assert kube.get(DEPLOYMENTS, NAMESPACE, f"{name}-worker") is None

    assert await redis_client.xlen("keep:work") == 2
    assert await redis_client.exists("purge:work") == 0


async def test_a_steady_queue_does_not_flood_the_api_server_with_status_writes(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    await apply(kube, jobqueue("quiet", redis_url))
    await eventually(lambda: condition(kube, "quiet", "Ready"), what="first status")

    def status_writes() -> int:
        return sum(
            1
            for r in kube.requests
            if r.subresource == "status" and r.name == "quiet" and r.method == "PATCH"
        )

    before = status_writes()
    start = operator.polls[(NAMESPACE, "quiet")]
    # When 15 more polls of the unchanging queue (0.2 s each) have run
    await eventually(
        lambda: operator.polls[(NAMESPACE, "quiet")] >= start + 15, timeout_s=30, what="polls"
    )
    # Then nothing new was written: every field is as last written
    assert status_writes() - before <= 1


async def test_the_operator_makes_only_the_documented_api_calls(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    # Given a JobQueue that scales up and is deleted (every kind of call the operator makes)
    await apply(kube, jobqueue("calls", redis_url, networkPolicy={"enabled": True}))
    await enqueue(redis_client, "calls:work", 1)
    await eventually(lambda: replicas_of(kube, "calls") == 1, what="scaled")
    await kube.patch_spec(JOBQUEUES, NAMESPACE, "calls", {"worker": {"concurrency": 2}})
    await kube.delete(JOBQUEUES, NAMESPACE, "calls")
    await eventually(lambda: kube.get(JOBQUEUES, NAMESPACE, "calls") is None, what="deleted")

    # Then every request is one the RBAC of the chart grants (kube.py documents them)
    allowed = {
        ("list", "jobqueue.dev/v1alpha1/jobqueues", ""),
        ("watch", "jobqueue.dev/v1alpha1/jobqueues", ""),
        ("patch", "jobqueue.dev/v1alpha1/jobqueues", ""),
        ("patch", "jobqueue.dev/v1alpha1/jobqueues", "status"),
        ("get", "apps/v1/deployments", ""),
        ("create", "apps/v1/deployments", ""),
        ("patch", "apps/v1/deployments", ""),
        ("delete", "apps/v1/deployments", ""),
        ("get", "policy/v1/poddisruptionbudgets", ""),
        ("create", "policy/v1/poddisruptionbudgets", ""),
        ("patch", "policy/v1/poddisruptionbudgets", ""),
        ("delete", "policy/v1/poddisruptionbudgets", ""),
        ("list", "v1/pods", ""),
        ("create", "v1/events", ""),
        ("get", "networking.k8s.io/v1/networkpolicies", ""),
        ("create", "networking.k8s.io/v1/networkpolicies", ""),
        ("patch", "networking.k8s.io/v1/networkpolicies", ""),
        ("delete", "networking.k8s.io/v1/networkpolicies", ""),
    }
    assert kube.calls <= allowed, kube.calls - allowed
    assert ("patch", "apps/v1/deployments", "") in kube.calls


async def test_the_redis_url_can_come_from_a_secret(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    # Given the URL (which would carry a password) in a Secret, not in the JobQueue
    encoded = base64.b64encode(redis_url.encode()).decode()
    await kube.create(SECRETS, NAMESPACE, {"metadata": {"name": "redis"}, "data": {"url": encoded}})
    body = jobqueue("secret", redis_url)
    body["spec"]["redis"] = {"secretRef": {"name": "redis", "key": "url"}}
    await apply(kube, body)

    # Then the workers get it from the Secret, and the operator reads the queue with it
    deployment = await eventually(
        lambda: kube.get(DEPLOYMENTS, NAMESPACE, "secret-worker"), what="deployment"
    )
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    [redis_env] = [e for e in container["env"] if e["name"] == "REDIS_URL"]
    assert redis_env == {
        "name": "REDIS_URL",
        "valueFrom": {"secretKeyRef": {"name": "redis", "key": "url"}},
    }
    await enqueue(redis_client, "secret:work", 2)
    await eventually(lambda: replicas_of(kube, "secret") == 1, what="scaled from the secret URL")


async def test_a_missing_secret_is_a_condition(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    body = jobqueue("nosecret", redis_url)
    body["spec"]["redis"] = {"secretRef": {"name": "absent"}}
    await apply(kube, body)
    reachable = await eventually(
        lambda: condition(kube, "nosecret", "RedisReachable"), what="RedisReachable"
    )
    assert (reachable["status"], reachable["reason"]) == ("False", "RedisConfig")
    assert "secret 'absent' has no key 'url'" in reachable["message"]


async def test_status_lag_stays_right_when_redis_reports_null_lag_after_xdel(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    # Given 5 jobs, one delivered and acked, and one undelivered job deleted (a tombstone
    # after the group's position: XINFO GROUPS says lag is NULL)
    stream = "tomb:work"
    await redis_client.xgroup_create(stream, "workers", id="0", mkstream=True)
    ids = [await redis_client.xadd(stream, {"type": "t", "payload": "{}"}) for _ in range(5)]
    taken = await redis_client.xreadgroup("workers", "tomb-worker-a", {stream: ">"}, count=1)
    await redis_client.xack(stream, "workers", taken[0][1][0][0])
    await redis_client.xdel(stream, ids[2])
    assert (await redis_client.xinfo_groups(stream))[0]["lag"] is None

    # When the operator samples the queue
    await apply(kube, jobqueue("tomb", redis_url))

    # Then the status carries the 3 jobs that really wait, and says how it knows
    def status() -> dict[str, Any]:
        return dict((kube.get(JOBQUEUES, NAMESPACE, "tomb") or {}).get("status", {}))

    found = await eventually(lambda: status().get("lagSource") and status(), what="status")
    assert (found["lag"], found["lagSource"], found["pending"]) == (3, "counted", 0)


async def test_the_operator_recovers_when_redis_comes_back(
    kube: KubeEmulator, operator: OperatorContext, own_redis: RedisServer
) -> None:
    # Given a JobQueue whose Redis goes down after it was sampled
    await apply(kube, jobqueue("flaky", own_redis.url))
    await eventually(lambda: _is(condition(kube, "flaky", "RedisReachable"), "True"), what="up")
    own_redis.kill()
    await eventually(lambda: _is(condition(kube, "flaky", "RedisReachable"), "False"), what="down")

    # When it is back (AOF replayed), with a job waiting
    own_redis.start()
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    try:
        await enqueue(redis, "flaky:work", 1)
    finally:
        await redis.aclose()

    # Then the condition clears and the job wakes the queue
    await eventually(lambda: _is(condition(kube, "flaky", "RedisReachable"), "True"), what="back")
    await eventually(lambda: replicas_of(kube, "flaky") == 1, what="scaled after recovery")


def _is(cond: dict[str, Any] | None, status: str) -> bool:
    return cond is not None and cond["status"] == status


async def test_a_secret_url_redis_cannot_parse_is_a_condition_naming_it(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    # Given a Secret whose URL has a typo in its port (and a password not to leak)
    bad = base64.b64encode(b"redis://:s3cret@redis:63O9/0").decode()
    await kube.create(SECRETS, NAMESPACE, {"metadata": {"name": "typo"}, "data": {"url": bad}})
    body = jobqueue("typo", redis_url)
    body["spec"]["redis"] = {"secretRef": {"name": "typo"}}
    await apply(kube, body)

    # Then the queue's RedisReachable condition says what is wrong, without the password
    reachable = await eventually(
        lambda: condition(kube, "typo", "RedisReachable"), what="RedisReachable"
    )
    assert (reachable["status"], reachable["reason"]) == ("False", "RedisConfig")
    assert "secret 'typo' key 'url'" in reachable["message"]
    assert "invalid port" in reachable["message"]
    assert "s3cret" not in reachable["message"]


async def test_a_secret_cluster_url_that_cannot_parse_is_a_condition_naming_it(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    # Given a Secret whose Cluster URL names a database (a cluster has 0 only)
    bad = base64.b64encode(b"redis+cluster://:s3cret@node-0:6379,node-1:6379/2").decode()
    await kube.create(SECRETS, NAMESPACE, {"metadata": {"name": "clusterdb"}, "data": {"url": bad}})
    body = jobqueue("clusterdb", redis_url)
    body["spec"]["redis"] = {"secretRef": {"name": "clusterdb"}}
    await apply(kube, body)

    # Then RedisReachable says what is wrong, as for any other bad URL, without the password
    reachable = await eventually(
        lambda: condition(kube, "clusterdb", "RedisReachable"), what="RedisReachable"
    )
    assert (reachable["status"], reachable["reason"]) == ("False", "RedisConfig")
    assert "secret 'clusterdb' key 'url'" in reachable["message"]
    assert "database 0 only" in reachable["message"]
    assert "s3cret" not in reachable["message"]


async def test_a_secret_sentinel_url_that_cannot_parse_is_a_condition_naming_it(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    # Given a Secret whose Sentinel URL forgot the master set's name (and has a password)
    bad = base64.b64encode(b"redis+sentinel://:s3cret@sentinel-0:26379,sentinel-1").decode()
    await kube.create(SECRETS, NAMESPACE, {"metadata": {"name": "nomaster"}, "data": {"url": bad}})
    body = jobqueue("nomaster", redis_url)
    body["spec"]["redis"] = {"secretRef": {"name": "nomaster"}}
    await apply(kube, body)

    # Then RedisReachable says what is wrong, as for any other bad URL, without the password
    reachable = await eventually(
        lambda: condition(kube, "nomaster", "RedisReachable"), what="RedisReachable"
    )
    assert (reachable["status"], reachable["reason"]) == ("False", "RedisConfig")
    assert "secret 'nomaster' key 'url'" in reachable["message"]
    assert "names the master set" in reachable["message"]
    assert "s3cret" not in reachable["message"]


async def test_limits_cap_the_replicas_they_can_keep_busy_and_say_so(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    # Given a queue of noop jobs limited to 20 running at once (2 replicas of 10 slots),
    # lagPerReplica 10 and maxReplicas 5,
    limits = [{"type": "noop", "concurrency": 20}]
    await apply(kube, jobqueue("capped", redis_url, limits=limits))
    await eventually(lambda: replicas_of(kube, "capped") == 0, what="deployment at 0")
    await eventually(lambda: redis_client.xinfo_groups("capped:work"), what="group")
    leases = "{capped:work}:limit:noop:leases"
    await redis_client.zadd(leases, {"1-1": 2**50})  # one job running somewhere
    # when 50 noop jobs arrive (the backlog alone asks for 5 replicas),
    await enqueue(redis_client, "capped:work", 50)
    # then the queue scales to the 2 the limit keeps busy, not beyond,
    await eventually(lambda: replicas_of(kube, "capped") == 2, what="2 replicas")
    cond = await eventually(
        lambda: (c := condition(kube, "capped", "RateLimited")) and c["status"] == "True" and c,
        what="condition set",
    )
    assert cond["reason"] == "LimitsCapReplicas"
    assert "the limits keep at most 20.0 slots busy" in cond["message"]
    await eventually(lambda: "RateLimited" in event_reasons(kube, "capped"), what="Event")
    status = (kube.get(JOBQUEUES, NAMESPACE, "capped") or {})["status"]
    assert status["limits"] == [{"type": "noop", "running": 1, "concurrency": 20}]
    assert status["desiredReplicas"] == 2
    assert replicas_of(kube, "capped") == 2
    # and once unlimited work waits too, the limits no longer bound it.
    for i in range(10):
        await redis_client.xadd("capped:work", {"type": "other", "payload": "{}", "id": f"o-{i}"})
    await eventually(lambda: replicas_of(kube, "capped") == 5, what="5 replicas")
    cond = await eventually(
        lambda: (c := condition(kube, "capped", "RateLimited")) and c["status"] == "False" and c,
        what="condition cleared",
    )
    assert cond["reason"] == "WithinLimits"
