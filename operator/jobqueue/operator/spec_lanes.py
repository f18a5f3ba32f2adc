"""``spec.lanes`` of a JobQueue: its priority lanes, each a name and the priorities it holds.

Written as Kubernetes users write lists of named things (a list keyed by ``name``)::

    lanes:
      - {name: high, priorities: "8-10"}
      - {name: normal, priorities: "4-7"}
      - {name: low, priorities: "1-3"}

The CRD's schema checks each entry's shape; that the ranges cover 1..10 exactly once is
checked by `jobqueue.core.lanes.parse_lanes`, the parser every component shares (a
spec that fails it is refused with a condition and an Event, like any bad spec value).
The operator passes the lanes to the worker pods as ``JOBQUEUE_LANES`` in the text form
(``high:8-10,normal:4-7,low:1-3``), and local mode to its processes the same way.
"""

from __future__ import annotations

from pydantic import Field

from jobqueue.core.lanes import LANE_NAME, Lanes, parse_lanes
from jobqueue.operator.spec_base import SpecModel

MAX_LANES = 10
"""One per priority at most: a lane holds at least one of the ten."""


class LaneSpec(SpecModel):
    """One priority lane: a stream of its own that workers serve before lower lanes."""

    name: str = Field(pattern=LANE_NAME.pattern, max_length=32)
    """Lane name (1-32 of a-z, 0-9, '_' or '-'); a stream ``{<stream>}:lane:<name>``
    unless it is the lane of priority 5, whose stream is the queue's ``stream``."""
    priorities: str = Field(pattern=r"^(10|[1-9])(-(10|[1-9]))?$")
    """The priorities (1..10) of the jobs it holds: one (``"10"``) or a range
    (``"8-10"``). Together the lanes must cover 1..10 exactly once."""


def lanes_text(lanes: list[LaneSpec]) -> str:
    """The lanes as ``JOBQUEUE_LANES`` writes them; '' for none."""
    return ",".join(f"{lane.name}:{lane.priorities}" for lane in lanes)


def parse_lane_specs(lanes: list[LaneSpec]) -> Lanes:
    """The lanes as every component reads them; ValueError saying what is wrong."""
    return parse_lanes(lanes_text(lanes))
