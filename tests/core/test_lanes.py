"""Priority lanes: parsing, the default lane on the queue's stream, every priority routed
to exactly one lane's stream, and clear errors for tables that would lose jobs."""

from __future__ import annotations

import pytest

from jobqueue.core.errors import ConfigError
from jobqueue.core.keys import QueueKeys, slot_of
from jobqueue.core.lanes import NO_LANES, Lane, parse_lanes
from jobqueue.core.settings import QueueSettings

KEYS = QueueKeys()


def test_three_lanes_route_each_priority_to_its_stream_highest_first() -> None:
    lanes = parse_lanes("low:1-3, high:8-10,normal:4-7")

    assert [lane.name for lane in lanes.lanes] == ["high", "normal", "low"]
    assert lanes.default == Lane("normal", 4, 7)
    assert lanes.streams(KEYS) == ["{jobs:work}:lane:high", "jobs:work", "{jobs:work}:lane:low"]
    routes = {p: lanes.stream_for(KEYS, p) for p in range(1, 11)}
    assert {p for p, s in routes.items() if s == "{jobs:work}:lane:high"} == {8, 9, 10}
    assert {p for p, s in routes.items() if s == "jobs:work"} == {4, 5, 6, 7}
    assert {p for p, s in routes.items() if s == "{jobs:work}:lane:low"} == {1, 2, 3}


def test_every_lane_stream_shares_the_queue_slot() -> None:
    keys = QueueKeys(stream="orders")
    lanes = parse_lanes("urgent:10,high:6-9,rest:1-5")

    assert {slot_of(stream) for stream in lanes.streams(keys)} == {slot_of("orders")}
    assert lanes.stream_for(keys, 5) == "orders"  # the default lane holds priority 5


def test_no_lanes_is_the_queue_stream_alone() -> None:
    for lanes in (NO_LANES, parse_lanes(""), parse_lanes(" , ")):
        assert not lanes
        assert lanes.default is None
        assert lanes.streams(KEYS) == ["jobs:work"]
        assert {lanes.stream_for(KEYS, p) for p in range(1, 11)} == {"jobs:work"}


def test_one_lane_for_everything_is_the_queue_stream() -> None:
    lanes = parse_lanes("all:1-10")

    assert lanes.streams(KEYS) == ["jobs:work"]


def test_text_round_trips() -> None:
    text = "high:8-10,normal:4-7,urgent-ish:3,low:1-2"
    lanes = parse_lanes(text)

    assert parse_lanes(lanes.text()) == lanes
    assert lanes.text() == "high:8-10,normal:4-7,urgent-ish:3,low:1-2"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("high:8-10,low:1-6", "priorities 7..7 have no lane"),
        ("high:7-10,low:2-6", "priorities 1..1 have no lane"),
        ("high:6-10,low:1-7", "overlaps"),
        ("a:1-10,a2:5", "overlaps"),
        ("x:1-5,x:6-10", "unique"),
        ("high:8-11,low:1-7", "within 1..10"),
        ("high:9-8,low:1-8", "within 1..10"),
        ("High:6-10,low:1-5", "lane name 'High'"),
        ("high=6-10,low:1-5", "is not name:low-high"),
        ("high:6-10,low:1-5,", None),  # a trailing comma is fine
    ],
)
def test_bad_tables_are_refused_with_the_reason(text: str, says: str | None) -> None:
    if says is None:
        assert parse_lanes(text)
        return
    with pytest.raises(ValueError, match=says.replace(".", r"\.")):
        parse_lanes(text)


def test_queue_settings_read_lanes_and_partitions_from_the_environment() -> None:
    settings = QueueSettings.from_env(
        {"JOBQUEUE_LANES": "high:8-10,normal:4-7,low:1-3", "JOBQUEUE_PARTITIONS": "3"}
    )

    assert [lane.name for lane in settings.lanes.lanes] == ["high", "normal", "low"]
    assert settings.partition_keys[0].stream == "jobs:work"
    assert len({slot_of(keys.stream) for keys in settings.partition_keys}) == 3
    assert QueueSettings.from_env({}).lanes == NO_LANES
    assert QueueSettings.from_env({}).partition_keys == [QueueKeys()]


@pytest.mark.parametrize(
    ("name", "value"),
    [("JOBQUEUE_LANES", "high:8-10,low:1-3"), ("JOBQUEUE_PARTITIONS", "0")],
)
def test_bad_lanes_or_partitions_are_a_config_error_naming_the_variable(
    name: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        QueueSettings.from_env({name: value})
