"""``spec.lanes`` of a JobQueue: its priority lanes, each a name and the priorities it holds.

Written as Kubernetes users write lists of named things (a list keyed by ``name``)::

    lanes:
      - {name: high, priorities: "8-10"}
      - {name: normal, priorities: "4-7"}
      - {name: low, priorities: "1-3"}

Workers serve them strictly (a higher lane always first) unless ``laneMode: Weighted``,
or any lane's ``weight``, asks for weighted reads: each lane's share of the reads in
proportion to its weight while several lanes have work, so a flood of high work cannot
starve the low lane. A lane without a weight weighs its place counted from the lowest
(1, 2, ...), as for the worker's ``JOBQUEUE_LANE_WEIGHTS``.

The CRD's schema checks each entry's shape; that the ranges cover 1..10 exactly once is
checked by `jobqueue.core.lanes.parse_lanes`, the parser every component shares (a
spec that fails it is refused with a condition and an Event, like any bad spec value).
The operator passes the lanes to the worker pods as ``JOBQUEUE_LANES`` in the text form
(``high:8-10,normal:4-7,low:1-3``), with ``JOBQUEUE_LANE_MODE`` and (weighted)
``JOBQUEUE_LANE_WEIGHTS`` (every lane's weight, ``high:6,normal:3,low:1``), checked by
the parsers the worker reads them with (`jobqueue.core.lanes`); local mode passes the
same to its processes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from jobqueue.core.lanes import (
    LANE_NAME,
    STRICT,
    WEIGHTED,
    Lanes,
    lane_weights,
    lane_weights_text,
    parse_lane_weights,
    parse_lanes,
)
from jobqueue.operator.spec_base import SpecModel

MAX_LANES = 10
"""One per priority at most: a lane holds at least one of the ten."""
LaneMode = Literal["Strict", "Weighted"]
"""``spec.laneMode``, in the CamelCase of Kubernetes enums (``retentionPolicy: Retain``)."""


class LaneSpec(SpecModel):
    """One priority lane: a stream of its own that workers serve before lower lanes."""

    name: str = Field(pattern=LANE_NAME.pattern, max_length=32)
    """Lane name (1-32 of a-z, 0-9, '_' or '-'); a stream ``{<stream>}:lane:<name>``
    unless it is the lane of priority 5, whose stream is the queue's ``stream``."""
    priorities: str = Field(pattern=r"^(10|[1-9])(-(10|[1-9]))?$")
    """The priorities (1..10) of the jobs it holds: one (``"10"``) or a range
    (``"8-10"``). Together the lanes must cover 1..10 exactly once."""
    weight: int | None = Field(default=None, ge=1)
    """Weighted mode: the lane's share of the reads while several lanes have work, in
    proportion to the other lanes' weights (1 or more). Giving any lane a weight makes
    ``laneMode`` Weighted unless it is set; unset: the lane's place counted from the
    lowest (1 for the lowest lane, 2 for the next, ...)."""


def lanes_text(lanes: list[LaneSpec]) -> str:
    """The lanes as ``JOBQUEUE_LANES`` writes them; '' for none."""
    return ",".join(f"{lane.name}:{lane.priorities}" for lane in lanes)


def parse_lane_specs(lanes: list[LaneSpec]) -> Lanes:
    """The lanes as every component reads them; ValueError saying what is wrong."""
    return parse_lanes(lanes_text(lanes))


def lane_mode_in_effect(mode: LaneMode | None, lanes: list[LaneSpec]) -> str:
    """``strict`` or ``weighted`` (as ``JOBQUEUE_LANE_MODE`` writes it): ``mode`` when
    set, else weighted exactly when some lane has a weight."""
    if mode is not None:
        return mode.lower()
    return WEIGHTED if any(lane.weight is not None for lane in lanes) else STRICT


def weights_in_effect(mode: LaneMode | None, lanes: list[LaneSpec]) -> list[int] | None:
    """Each lane's weight, highest lane first, in weighted mode (a lane without one
    weighs its place from the lowest); None in strict mode. ValueError saying what is
    wrong: weighted without lanes, weights with ``laneMode: Strict``, or what the
    worker's own parsers refuse."""
    weighted = [lane.name for lane in lanes if lane.weight is not None]
    if lane_mode_in_effect(mode, lanes) == STRICT:
        if weighted:
            raise ValueError(
                f"lanes[].weight ({', '.join(weighted)}) is for laneMode Weighted, Strict "
                "never uses it: set laneMode to Weighted, or leave it unset"
            )
        return None
    if not lanes:
        raise ValueError(
            "laneMode Weighted needs lanes: without spec.lanes there is one stream, "
            "nothing to weigh"
        )
    given = ",".join(f"{lane.name}:{lane.weight}" for lane in lanes if lane.weight is not None)
    # The worker's own parsers, on the text it will be given: what they refuse here the
    # worker would refuse at start, in every pod.
    return lane_weights(parse_lane_specs(lanes), parse_lane_weights(given))


def lane_mode_env(mode: LaneMode | None, lanes: list[LaneSpec]) -> dict[str, str]:
    """``JOBQUEUE_LANE_MODE`` and ``JOBQUEUE_LANE_WEIGHTS`` (every lane's weight in
    weighted mode, '' in strict mode) of the worker processes; both always set, so a
    value from elsewhere never overrides the spec."""
    weights = weights_in_effect(mode, lanes)
    text = "" if weights is None else lane_weights_text(parse_lane_specs(lanes), weights)
    return {
        "JOBQUEUE_LANE_MODE": lane_mode_in_effect(mode, lanes),
        "JOBQUEUE_LANE_WEIGHTS": text,
    }
