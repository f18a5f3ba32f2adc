"""The key table: every key of a queue in the stream's Redis Cluster slot, partitions
spread over the slot space."""

from __future__ import annotations

import pytest

from jobqueue.core.errors import ConfigError
from jobqueue.core.keys import (
    LEGACY_DEAD_STREAM,
    QueueKeys,
    hash_tag,
    partition_streams,
    slot_of,
)
from jobqueue.core.settings import QueueSettings


def every_key(keys: QueueKeys) -> list[str]:
    return [
        keys.stream,
        keys.dead,
        keys.delayed,
        keys.delayed_jobs,
        keys.status("01JABCDEFGHJKMNPQRSTVWXYZ0"),
        keys.idempotency("order-42"),
        keys.lane("high"),
        keys.health,
        keys.queued,
        keys.done("01JABCDEFGHJKMNPQRSTVWXYZ0") or "",
        keys.started,
        keys.solo,
        keys.crashes,
        keys.waiting,
        keys.settled,
    ]


@pytest.mark.parametrize("stream", ["jobs:work", "emails", "{tenant-7}:work", "a{b}c", "x{y"])
def test_every_key_of_a_queue_hashes_to_the_stream_slot(stream: str) -> None:
    keys = QueueKeys(stream=stream)

    assert {slot_of(key) for key in every_key(keys)} == {slot_of(stream)}
    assert keys.single_slot
    assert len(set(every_key(keys))) == len(every_key(keys))


def test_the_stream_keeps_its_name_and_the_others_carry_it_as_a_hash_tag() -> None:
    keys = QueueKeys()

    assert keys.stream == "jobs:work"
    assert keys.dead == "{jobs:work}:dead"
    assert keys.delayed == "{jobs:work}:delayed"
    assert keys.delayed_jobs == "{jobs:work}:delayed:jobs"
    assert keys.status("J1") == "{jobs:work}:job:J1"
    assert keys.idempotency("k") == "{jobs:work}:idem:k"
    assert keys.lane("low") == "{jobs:work}:lane:low"
    assert QueueKeys("{t}:work").delayed == "{t}:work:delayed"


def test_an_explicit_dead_stream_is_kept_and_reported_as_another_slot() -> None:
    keys = QueueKeys(dead_stream=LEGACY_DEAD_STREAM)

    assert keys.dead == "jobs:dead"
    assert not keys.single_slot


def test_two_queues_never_share_a_key() -> None:
    a, b = QueueKeys("jobs:work"), QueueKeys("jobs:work:job")

    assert not set(every_key(a)) & set(every_key(b))


def test_hash_tag_follows_the_cluster_rule() -> None:
    assert hash_tag("{a}b") == "a"
    assert hash_tag("x{a}{b}") == "a"
    assert hash_tag("{}a") is None
    assert hash_tag("no tag") is None
    assert hash_tag("{open") is None


@pytest.mark.parametrize("stream", ["jobs:work", "{tenant}:work"])
@pytest.mark.parametrize("partitions", [1, 2, 3, 6, 16])
def test_partitions_spread_evenly_over_the_slot_space(stream: str, partitions: int) -> None:
    names = partition_streams(stream, partitions)

    assert names[0] == stream
    assert len(set(names)) == partitions
    assert partition_streams(stream, partitions) == names
    width = 16384 / partitions
    home = int(slot_of(stream) // width)
    ranges = [int(slot_of(name) // width) for name in names]
    assert ranges == [(home + i) % partitions for i in range(partitions)]
    for name in names[1:]:  # clear of the ranges' ends, which a cluster rounds
        assert width / 4 <= slot_of(name) % width < 3 * width / 4 + 1
    for name in names:
        keys = QueueKeys(name)
        assert {slot_of(key) for key in every_key(keys)} == {slot_of(name)}


def test_partitions_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        partition_streams("jobs:work", 0)


@pytest.mark.parametrize("stream", ["x{}y", "a}b", ""])
def test_a_stream_name_whose_keys_cannot_share_its_slot_is_refused(stream: str) -> None:
    with pytest.raises(ValueError, match="stream name"):
        QueueKeys(stream)
    with pytest.raises(ConfigError, match="stream name"):
        QueueSettings(stream=stream)
