"""Priority lanes of a queue: which stream a job of each priority 1..10 waits in.

Written as text (``high:8-10,normal:4-7,low:1-3``), parsed here for every component:
each lane a name and the range of priorities it holds (one priority: ``urgent:10``).
Together the ranges must cover 1..10 exactly once, so every valid job has one lane and
none is ever dropped for want of one. The lane holding the default priority (5) is the
default lane: its stream is the queue's stream itself, so a plain ``XADD`` to it keeps
working; every other lane is the stream ``{tag}:lane:<name>`` (`QueueKeys.lane`), in
the queue's Cluster slot. Empty text means no lanes: one stream, as before.

Lanes are ordered highest first; that is the order workers serve them in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY

LANE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
"""Lane names: lower-case, short, safe in a key, a metric label and a DNS-ish spec."""
STRICT, WEIGHTED = "strict", "weighted"
LANE_MODES = (STRICT, WEIGHTED)
"""How workers serve the lanes: a higher lane always first, or in proportion to weights
(``JOBQUEUE_LANE_MODE``; `jobqueue.worker.lanes`)."""
_ITEM = re.compile(r"^(?P<name>[^:]+):(?P<low>\d+)(?:-(?P<high>\d+))?$")


@dataclass(frozen=True, slots=True)
class Lane:
    """One lane: its name and the priorities ``low..high`` (inclusive) it holds."""

    name: str
    low: int
    high: int

    def holds(self, priority: int) -> bool:
        return self.low <= priority <= self.high

    def text(self) -> str:
        """``name:low-high``, or ``name:p`` for a lane of one priority."""
        span = str(self.low) if self.low == self.high else f"{self.low}-{self.high}"
        return f"{self.name}:{span}"


@dataclass(frozen=True, slots=True)
class Lanes:
    """A queue's lanes, highest first; empty means the queue has none (one stream)."""

    lanes: tuple[Lane, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.lanes)

    @property
    def default(self) -> Lane | None:
        """The lane of the default priority, whose stream is the queue's stream."""
        return next((lane for lane in self.lanes if lane.holds(DEFAULT_PRIORITY)), None)

    def lane_for(self, priority: int) -> Lane | None:
        """The lane a job of ``priority`` goes to; None when there are no lanes."""
        return next((lane for lane in self.lanes if lane.holds(priority)), None)

    def stream(self, keys: QueueKeys, lane: Lane) -> str:
        """The stream of ``lane``: the queue's stream for the default lane."""
        return keys.stream if lane == self.default else keys.lane(lane.name)

    def stream_for(self, keys: QueueKeys, priority: int) -> str:
        """The stream a job of ``priority`` is added to (the queue's without lanes)."""
        lane = self.lane_for(priority)
        return keys.stream if lane is None else self.stream(keys, lane)

    def streams(self, keys: QueueKeys) -> list[str]:
        """Every ready stream of the queue, highest lane first (just the queue's stream
        without lanes)."""
        if not self.lanes:
            return [keys.stream]
        return [self.stream(keys, lane) for lane in self.lanes]

    def recorded_name(self, priority: int) -> str:
        """The name a job of ``priority`` is recorded under beside its entry id: its
        lane's, or '' in the queue's own stream (the default lane's, or no lanes)."""
        lane = self.lane_for(priority)
        return "" if lane is None or lane == self.default else lane.name

    def named_streams(self, keys: QueueKeys) -> list[tuple[str, str]]:
        """``(recorded name, stream)`` of every ready stream, the queue's own stream
        first (as ``''``), then the other lanes highest first: the order the client's
        scripts get them in (`jobqueue.core.scripts`)."""
        default = self.default
        others = [(lane.name, keys.lane(lane.name)) for lane in self.lanes if lane != default]
        return [("", keys.stream), *others]

    def text(self) -> str:
        """The lanes written as `parse_lanes` reads them."""
        return ",".join(lane.text() for lane in self.lanes)


NO_LANES = Lanes()


def parse_lanes(text: str) -> Lanes:
    """``name:low-high`` items separated by commas; ValueError saying what is wrong.

    The ranges must cover priorities 1..10 exactly once (a gap would leave valid jobs
    without a lane, an overlap would make the route ambiguous)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    lanes = sorted((_parse_item(item) for item in items), key=lambda lane: -lane.high)
    names = [lane.name for lane in lanes]
    if len(set(names)) != len(names):
        raise ValueError(f"lane names must be unique, got {', '.join(names)}")
    expected = MAX_PRIORITY
    for lane in lanes:
        if lane.high != expected:
            raise ValueError(_coverage_error(lane, expected))
        expected = lane.low - 1
    if lanes and expected != MIN_PRIORITY - 1:
        raise ValueError(
            f"priorities {MIN_PRIORITY}..{expected} have no lane: "
            f"the lanes must cover {MIN_PRIORITY}..{MAX_PRIORITY}"
        )
    return Lanes(tuple(lanes))


def parse_lane_weights(text: str) -> tuple[tuple[str, int], ...]:
    """``name:weight,...`` (``high:6,normal:3,low:1``) read; ValueError saying what is
    wrong. Empty text: no weights given (each lane's default applies)."""
    out: list[tuple[str, int]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, weight = item.partition(":")
        if not sep or not weight.strip().isdigit() or int(weight) < 1:
            raise ValueError(f"{item!r} is not name:weight with a weight of 1 or more")
        if any(name.strip() == seen for seen, _ in out):
            raise ValueError(f"lane {name.strip()!r} has two weights")
        out.append((name.strip(), int(weight)))
    return tuple(out)


def lane_weights(lanes: Lanes, given: Sequence[tuple[str, int]]) -> list[int]:
    """Each lane's weight, highest lane first: the one given, else its place counted from
    the lowest (3, 2, 1 for three lanes). ValueError for a weight of a lane that does not
    exist."""
    names = [lane.name for lane in lanes.lanes]
    weights = dict(given)
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(
            f"JOBQUEUE_LANE_WEIGHTS names no lane of the queue: {', '.join(unknown)} "
            f"(lanes: {', '.join(names) or 'none'})"
        )
    return [weights.get(name, len(names) - i) for i, name in enumerate(names)]


def lane_weights_text(lanes: Lanes, weights: Sequence[int]) -> str:
    """``name:weight`` per lane (``high:6,normal:3,low:1``), as ``JOBQUEUE_LANE_WEIGHTS``
    is written; ``weights`` highest lane first, as `lane_weights` gives them."""
    return ",".join(f"{lane.name}:{w}" for lane, w in zip(lanes.lanes, weights, strict=True))


def _parse_item(item: str) -> Lane:
    match = _ITEM.match(item)
    if match is None:
        raise ValueError(f"{item!r} is not name:low-high (e.g. high:8-10) or name:priority")
    name, low = match["name"].strip(), int(match["low"])
    high = int(match["high"]) if match["high"] is not None else low
    if not LANE_NAME.match(name):
        raise ValueError(
            f"lane name {name!r} must be 1-32 of a-z, 0-9, '_' or '-', starting with a "
            "letter or digit"
        )
    if not MIN_PRIORITY <= low <= high <= MAX_PRIORITY:
        raise ValueError(
            f"lane {name!r}: {low}-{high} is not a range within {MIN_PRIORITY}..{MAX_PRIORITY}"
        )
    return Lane(name, low, high)


def _coverage_error(lane: Lane, expected: int) -> str:
    if lane.high > expected:
        return f"lane {lane.name!r} overlaps another lane at priority {lane.high}"
    return f"priorities {lane.high + 1}..{expected} have no lane"
