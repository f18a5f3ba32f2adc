"""Weighted lane order (`WeightedOrder`): shares by weight, no lane starved, no credit
banked by an idle lane. Pure arithmetic: what the read script would do is simulated."""

from __future__ import annotations

from jobqueue.worker.lanes import WeightedOrder


def read(order: WeightedOrder, count: int, backlog: list[int]) -> list[int]:
    """One read of ``count`` slots as `READ_LANES` takes it from lanes holding
    ``backlog`` entries (consumed); entries got per lane."""
    plan = order.plan(count)
    got, left = [0] * len(backlog), count
    for i, cap in plan:
        if left <= 0:
            break
        n = min(cap, left, backlog[i])
        got[i] += n
        backlog[i] -= n
        left -= n
    for i in range(len(backlog)):  # second pass, highest first
        n = min(left, backlog[i])
        got[i] += n
        backlog[i] -= n
        left -= n
    order.settle(count, plan, got)
    return got


def test_backlogged_lanes_share_the_reads_by_weight() -> None:
    order, backlog, total = WeightedOrder([6, 3, 1]), [10**6] * 3, [0, 0, 0]
    for count in [1, 3, 7, 2, 32] * 200:
        for i, n in enumerate(read(order, count, backlog)):
            total[i] += n
    reads = sum(total)
    assert [round(n / reads, 2) for n in total] == [0.6, 0.3, 0.1]


def test_a_backlogged_low_lane_waits_about_total_over_weight_one_slot_reads() -> None:
    order, backlog = WeightedOrder([6, 3, 1]), [10**6] * 3
    gaps, since = [], 0
    for _ in range(1000):
        got = read(order, 1, backlog)
        since += 1
        if got[2]:
            gaps.append(since)
            since = 0
    # total / weight = 10, plus one read for each other lane owed more at its turn
    assert max(gaps) <= 10 + 2
    assert len(gaps) >= 1000 // 12


def test_an_idle_lane_banks_no_credit_and_its_share_goes_to_the_others() -> None:
    order, backlog = WeightedOrder([1, 1]), [10**6, 0]
    for _ in range(100):
        assert read(order, 4, backlog) == [4, 0]  # work-conserving: the high lane gets all
    # when the second lane gets work, it gets its share, not a burst of saved-up credit
    backlog[1] = 10**6
    assert sum(read(order, 4, backlog)[1] for _ in range(10)) <= 4 * 10 // 2 + 2
