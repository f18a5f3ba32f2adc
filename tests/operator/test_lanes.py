"""A JobQueue with priority lanes, against the Kubernetes API emulator and a real Redis:
the workers get the lanes, the operator scales on every lane's backlog together and
shows each lane in the status and the metrics; a bad lane table is a condition."""

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
from jobqueue.operator.scaler import OperatorContext
from jobqueue.operator.spec import load_jobqueue, parse_spec

LANES = [
    {"name": "high", "priorities": "8-10"},
    {"name": "normal", "priorities": "4-7"},
    {"name": "low", "priorities": "1-3"},
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
