"""A JobQueue with priority lanes, against the Kubernetes API emulator and a real Redis:
the workers get the lanes, the operator scales on every lane's backlog together and
shows each lane in the status and the metrics; a bad lane table is a condition. Weighted
reads (``laneMode``, ``lanes[].weight``) reach the workers as the worker's own settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from support.kube_emulator import (
    DEPLOYMENTS,
    JOBQUEUES,
    NAMESPACE,
    KubeEmulator,
    apply,
    eventually,
    jobqueue,
)

from jobqueue.core.errors import ConfigError
from jobqueue.core.keys import QueueKeys
from jobqueue.operator.crd import crd_manifest
from jobqueue.operator.scaler import OperatorContext
from jobqueue.operator.spec import load_jobqueue, parse_spec
from jobqueue.operator.worker_pod import worker_pod
from jobqueue.worker.settings import WorkerSettings

LANES = [
    {"name": "high", "priorities": "8-10"},
    {"name": "normal", "priorities": "4-7"},
    {"name": "low", "priorities": "1-3"},
]


WEIGHTED = [
    {"name": "high", "priorities": "8-10", "weight": 6},
    {"name": "normal", "priorities": "4-7", "weight": 3},
    {"name": "low", "priorities": "1-3", "weight": 1},
]


def replicas_of(kube: KubeEmulator, name: str) -> int | None:
    deployment = kube.get(DEPLOYMENTS, NAMESPACE, f"{name}-worker")
    return None if deployment is None else int(deployment["spec"]["replicas"])


def status_of(kube: KubeEmulator, name: str) -> dict[str, Any]:
    return dict((kube.get(JOBQUEUES, NAMESPACE, name) or {}).get("status", {}))


async def enqueue(redis: Redis, stream: str, count: int) -> None:
    for i in range(count):
        await redis.xadd(stream, {"type": "noop", "payload": "{}", "id": f"{stream}-{i}"})


async def _consumers(redis: Redis, stream: str) -> set[str]:
    return {str(c["name"]) for c in await redis.xinfo_consumers(stream, "workers")}


def test_the_spec_reads_lanes_as_the_workers_do() -> None:
    spec = parse_spec(jobqueue("q", "redis://r:6379/0", lanes=LANES)["spec"])

    assert spec.lanes_text == "high:8-10,normal:4-7,low:1-3"
    assert [lane.name for lane in spec.queue_lanes.lanes] == ["high", "normal", "low"]
    assert parse_spec(jobqueue("q", "redis://r:6379/0")["spec"]).lanes_text == ""


@pytest.mark.parametrize(
    ("lanes", "message"),
    [
        ([{"name": "high", "priorities": "6-10"}], "priorities 1..5 have no lane"),
        (
            [{"name": "a", "priorities": "1-10"}, {"name": "b", "priorities": "5"}],
            "overlaps another lane at priority 5",
        ),
        ([{"name": "High", "priorities": "1-10"}], "lanes.0.name"),
        ([{"name": "all", "priorities": "0-10"}], "lanes.0.priorities"),
    ],
)
def test_a_bad_lane_table_is_refused_naming_the_problem(
    lanes: list[dict[str, str]], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_spec(jobqueue("q", "redis://r:6379/0", lanes=lanes)["spec"])


def lane_env(**spec: Any) -> dict[str, str]:
    return parse_spec(jobqueue("q", "redis://r:6379/0", **spec)["spec"]).lane_env


def test_weights_make_the_workers_read_weighted_as_their_own_settings_say() -> None:
    # A weight on any lane is weighted mode; a lane without one weighs its place (2)
    partly = [WEIGHTED[0], LANES[1], WEIGHTED[2]]
    env = lane_env(lanes=partly)
    assert env == {
        "JOBQUEUE_LANES": "high:8-10,normal:4-7,low:1-3",
        "JOBQUEUE_LANE_MODE": "weighted",
        "JOBQUEUE_LANE_WEIGHTS": "high:6,normal:2,low:1",
    }
    # and the worker reads that environment back to the same weights
    assert WorkerSettings.from_env(env).weights == [6, 2, 1]
    # laneMode Weighted without weights: each lane its place from the lowest
    default = lane_env(lanes=LANES, laneMode="Weighted")
    assert default["JOBQUEUE_LANE_WEIGHTS"] == "high:3,normal:2,low:1"
    assert WorkerSettings.from_env(default).weights == [3, 2, 1]
    # Strict (given, or implied by no weights) and no lanes at all: strict, no weights
    strict = {"JOBQUEUE_LANE_MODE": "strict", "JOBQUEUE_LANE_WEIGHTS": ""}
    assert lane_env(lanes=LANES, laneMode="Strict") == {
        **strict,
        "JOBQUEUE_LANES": env["JOBQUEUE_LANES"],
    }
    assert lane_env(lanes=LANES)["JOBQUEUE_LANE_MODE"] == "strict"
    assert lane_env() == {**strict, "JOBQUEUE_LANES": ""}
    assert WorkerSettings.from_env(lane_env()).weights is None


def test_a_lane_mode_written_as_worker_env_is_the_operators_and_dropped_saying_so() -> None:
    # (before the spec had the fields, the docs said to set it this way)
    worker = {"image": "x", "app": "a:b", "env": [{"name": "JOBQUEUE_LANE_MODE", "value": "x"}]}
    spec = parse_spec(jobqueue("q", "redis://r:6379/0", lanes=WEIGHTED, worker=worker)["spec"])

    pod = worker_pod("q", spec)

    assert pod.conflicts == ("worker.env[JOBQUEUE_LANE_MODE]: set by the operator from the spec",)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"laneMode": "Weighted"}, "laneMode Weighted needs lanes"),
        (
            {"laneMode": "Strict", "lanes": WEIGHTED},
            r"weight \(high, normal, low\) is for laneMode Weighted",
        ),
        ({"lanes": [{**WEIGHTED[0], "weight": 0}, *WEIGHTED[1:]]}, "lanes.0.weight"),
        (
            {"laneMode": "weighted", "lanes": WEIGHTED},
            "laneMode: Input should be 'Strict' or 'Weighted'",
        ),
    ],
)
def test_a_lane_mode_that_does_not_fit_the_lanes_is_refused_naming_it(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_spec(jobqueue("q", "redis://r:6379/0", **spec)["spec"])


def test_the_crd_checks_weights_and_the_mode_as_the_operator_does() -> None:
    schema = crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    assert spec["properties"]["laneMode"]["enum"] == ["Strict", "Weighted"]
    assert "default" not in spec["properties"]["laneMode"]  # unset: implied by the weights
    assert spec["properties"]["lanes"]["items"]["properties"]["weight"]["minimum"] == 1
    messages = {v["message"] for v in spec["x-kubernetes-validations"]}
    assert "laneMode Weighted needs lanes" in messages
    assert any(m.startswith("lanes[].weight is for laneMode Weighted") for m in messages)


async def test_the_operator_scales_on_every_lane_and_shows_each(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    # Given a queue with three lanes (lagPerReplica 10)
    await apply(kube, jobqueue("prio", redis_url, lanes=LANES))
    keys = QueueKeys("prio:work")
    high, low = keys.lane("high"), keys.lane("low")
    deployment = await eventually(
        lambda: kube.get(DEPLOYMENTS, NAMESPACE, "prio-worker"), what="deployment"
    )
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["JOBQUEUE_LANES"] == "high:8-10,normal:4-7,low:1-3"
    # The group exists on every lane's stream, for the workers to read with
    for stream in (high, keys.stream, low):
        await eventually(lambda s=stream: redis_client.xinfo_groups(s), what=f"group on {stream}")

    # When 12 + 9 + 14 jobs wait, no lane alone asks for more than 2 replicas; together 4
    await enqueue(redis_client, high, 12)
    await enqueue(redis_client, keys.stream, 9)
    await enqueue(redis_client, low, 14)
    await eventually(lambda: replicas_of(kube, "prio") == 4, what="4 replicas")
    await redis_client.xreadgroup("workers", "w1", {high: ">"}, count=2)
    # and a consumer of a pod that is gone is left in the low lane's group, holding nothing
    await redis_client.xgroup_createconsumer(low, "workers", "gone-pod")
    status = await eventually(
        lambda: status_of(kube, "prio").get("pending") == 2 and status_of(kube, "prio"),
        what="status with 2 pending",
    )
    assert (status["lag"], status["pending"]) == (33, 2)
    assert status["lanes"] == [
        {"name": "high", "stream": high, "lag": 10, "pending": 2},
        {"name": "normal", "stream": keys.stream, "lag": 9, "pending": 0},
        {"name": "low", "stream": low, "lag": 14, "pending": 0},
    ]

    # The gone pod's consumer is removed from the lane; the one holding jobs stays
    async def low_lane_emptied() -> bool:
        return await _consumers(redis_client, low) == set()

    await eventually(low_lane_emptied, what="no consumer left in the low lane")
    assert await _consumers(redis_client, high) == {"w1"}
    labels = {"namespace": NAMESPACE, "jobqueue": "prio", "lane": "low"}
    registry = operator.metrics.registry
    assert registry.get_sample_value("jobqueue_queue_lane_lag_jobs", labels) == 14
    labels["lane"] = "high"
    assert registry.get_sample_value("jobqueue_queue_lane_pending_jobs", labels) == 2
    # and each lane's oldest waiting job has an age (from its entry id, one sample's clock):
    # the high lane's jobs were enqueued first, the low lane's last
    ages = []
    for lane in ("high", "normal", "low"):
        labels["lane"] = lane
        ages.append(registry.get_sample_value("jobqueue_queue_lane_oldest_job_age_seconds", labels))
    assert None not in ages
    assert ages == sorted(ages, reverse=True)
    assert 0 < ages[0] < 600


async def test_a_lane_table_with_a_gap_is_a_condition_and_an_event_not_a_crash(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    # Given a table the CRD's schema lets through (each entry is well formed) but that
    # leaves priorities 1..3 without a lane, and a good queue beside it
    gap = [{"name": "high", "priorities": "8-10"}, {"name": "normal", "priorities": "4-7"}]
    await apply(kube, jobqueue("gappy", redis_url, lanes=gap))
    await apply(kube, jobqueue("fine", redis_url, lanes=LANES))

    ready = await eventually(
        lambda: next(
            (c for c in status_of(kube, "gappy").get("conditions", []) if c["type"] == "Ready"),
            None,
        ),
        what="Ready condition",
    )
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "priorities 1..3 have no lane" in ready["message"]
    await eventually(
        lambda: "InvalidSpec" in {e.get("reason") for e in kube.events(involved="gappy")},
        what="InvalidSpec event",
    )
    assert kube.get(DEPLOYMENTS, NAMESPACE, "gappy-worker") is None

    # Then the good one still scales on its lanes
    await eventually(lambda: replicas_of(kube, "fine") == 0, what="fine deployment")
    await enqueue(redis_client, QueueKeys("fine:work").lane("low"), 3)
    await eventually(lambda: replicas_of(kube, "fine") == 1, what="fine scaled")


def test_the_sample_jobqueue_lanes_example_is_valid_once_uncommented() -> None:
    sample = Path(__file__).parents[2] / "manifests" / "samples" / "jobqueue.yaml"
    text = re.sub(r"^  # (lanes:|  - \{name)", r"  \1", sample.read_text(), flags=re.M)

    spec = load_jobqueue(text).spec

    assert spec.lanes_text == "high:8-10,normal:4-7,low:1-3"
    assert spec.lane_env["JOBQUEUE_LANE_WEIGHTS"] == "high:6,normal:3,low:1"


async def test_a_lane_removed_while_it_holds_jobs_is_shown_orphaned_until_drained(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    # Given a queue with three lanes and 3 jobs waiting in the low one
    await apply(kube, jobqueue("shrink", redis_url, lanes=LANES))
    low = QueueKeys("shrink:work").lane("low")
    await eventually(lambda: replicas_of(kube, "shrink") == 0, what="deployment")
    await eventually(lambda: redis_client.exists(low), what="the low lane's stream and group")
    await enqueue(redis_client, low, 3)
    await eventually(
        lambda: [r["lag"] for r in status_of(kube, "shrink").get("lanes", [])] == [0, 0, 3],
        what="the low lane's lag in the status",
    )

    # When the spec drops the low lane, its stream is unread: shown orphaned, with a
    # condition and an Event, and not counted in the backlog
    two = [{"name": "high", "priorities": "8-10"}, {"name": "normal", "priorities": "1-7"}]
    await kube.patch_spec(JOBQUEUES, NAMESPACE, "shrink", {"lanes": two})

    def orphaned() -> list[dict[str, Any]]:
        return [r for r in status_of(kube, "shrink").get("lanes", []) if r.get("orphaned")]

    assert await eventually(orphaned, what="an orphaned lane") == [
        {"name": "low", "stream": low, "lag": 3, "pending": 0, "orphaned": True}
    ]
    condition = next(
        c for c in status_of(kube, "shrink")["conditions"] if c["type"] == "LanesOrphaned"
    )
    assert (condition["status"], condition["reason"]) == ("True", "UnreadLaneStreams")
    assert "low (3 jobs)" in condition["message"]
    assert status_of(kube, "shrink")["lag"] == 0
    await eventually(
        lambda: "LanesOrphaned" in {e.get("reason") for e in kube.events(involved="shrink")},
        what="LanesOrphaned event",
    )

    # When someone takes the jobs out (here: read and acknowledged), the warning clears
    taken = await redis_client.xreadgroup("workers", "by-hand", {low: ">"})
    await redis_client.xack(low, "workers", *[entry_id for entry_id, _ in taken[0][1]])

    def cleared() -> bool:
        conditions = status_of(kube, "shrink").get("conditions", [])
        found = [c for c in conditions if c["type"] == "LanesOrphaned"]
        return bool(found) and found[0]["status"] == "False" and not orphaned()

    await eventually(cleared, what="LanesOrphaned cleared")


async def test_weighted_lanes_reach_the_workers_and_the_status_and_a_misfit_is_a_condition(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    # Given a queue with weighted lanes, and one whose weights contradict laneMode Strict
    # (a table the API server's CEL rule refuses, but the operator must not crash on it)
    await apply(kube, jobqueue("fair", redis_url, lanes=WEIGHTED))
    await apply(kube, jobqueue("torn", redis_url, lanes=WEIGHTED, laneMode="Strict"))

    # Then the worker pods get the weighted mode and every lane's weight
    deployment = await eventually(
        lambda: kube.get(DEPLOYMENTS, NAMESPACE, "fair-worker"), what="deployment"
    )
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["JOBQUEUE_LANE_MODE"] == "weighted"
    assert env["JOBQUEUE_LANE_WEIGHTS"] == "high:6,normal:3,low:1"
    # and the status shows the mode in effect, each lane with its weight
    status = await eventually(
        lambda: status_of(kube, "fair").get("laneMode") and status_of(kube, "fair"),
        what="status with the lane mode",
    )
    assert status["laneMode"] == "Weighted"
    assert [(r["name"], r["weight"]) for r in status["lanes"]] == [
        ("high", 6),
        ("normal", 3),
        ("low", 1),
    ]

    # The misfit is refused with a condition and an Event naming the problem, no Deployment
    ready = await eventually(
        lambda: next(
            (c for c in status_of(kube, "torn").get("conditions", []) if c["type"] == "Ready"),
            None,
        ),
        what="Ready condition",
    )
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "is for laneMode Weighted" in ready["message"]
    await eventually(
        lambda: "InvalidSpec" in {e.get("reason") for e in kube.events(involved="torn")},
        what="InvalidSpec event",
    )
    assert kube.get(DEPLOYMENTS, NAMESPACE, "torn-worker") is None

    # When the weighted queue goes back to strict, its pods and status follow
    await kube.patch_spec(JOBQUEUES, NAMESPACE, "fair", {"lanes": LANES})

    def strict_env() -> bool:
        found = kube.get(DEPLOYMENTS, NAMESPACE, "fair-worker") or {}
        [worker] = found["spec"]["template"]["spec"]["containers"]
        now = {e["name"]: e.get("value") for e in worker["env"]}
        return (now["JOBQUEUE_LANE_MODE"], now["JOBQUEUE_LANE_WEIGHTS"]) == ("strict", "")

    await eventually(strict_env, what="strict mode in the worker environment")
    status = await eventually(
        lambda: status_of(kube, "fair").get("laneMode") == "Strict" and status_of(kube, "fair"),
        what="status in strict mode",
    )
    assert all("weight" not in row for row in status["lanes"])
