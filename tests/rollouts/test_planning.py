"""Rollout planning: wave sizes, the percentage share, assignment to waves, the failure budget."""

from __future__ import annotations

import uuid

import pytest

from control_plane.rollouts.planning import allowed_failures, assign_waves, keep_percent, shuffled, wave_sizes
from control_plane.rollouts.schemas import Plan


@pytest.mark.parametrize(
    ("plan", "total", "sizes"),
    [
        (Plan(canaries=2, first_wave=10, growth=2.0), 200, [2, 10, 20, 40, 80, 48]),
        (Plan(canaries=1, first_wave=10, growth=2.0, max_wave=25), 100, [1, 10, 20, 25, 25, 19]),
        (Plan(canaries=1, first_wave=3, growth=1.5), 20, [1, 3, 4, 6, 6]),  # floor(4.5), floor(6.75); the rest
        (Plan(canaries=1, first_wave=5, growth=1.0), 12, [1, 5, 5, 1]),
        (Plan(canaries=0, first_wave=4), 6, [0, 4, 2]),
        (Plan(canaries=5), 3, [3]),  # fewer workspaces than canaries: all of them are canaries
        (Plan(canaries=1), 0, [0]),
    ],
)
def test_wave_sizes_grow_from_the_first_wave_up_to_the_cap_and_add_up(plan: Plan, total: int, sizes: list[int]) -> None:
    assert wave_sizes(plan, total) == sizes
    assert sum(sizes) == total


def test_every_workspace_joins_one_wave_in_order_with_the_first_ones_as_canaries() -> None:
    plan = Plan(canaries=2, first_wave=3, growth=2.0)
    ordered = [uuid.uuid4() for _ in range(12)]
    assigned = assign_waves(ordered, plan)
    assert [w for w, _ in assigned] == ordered
    assert [wave for _, wave in assigned] == [0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3]


def test_the_order_is_stable_per_rollout_and_differs_between_rollouts() -> None:
    workspaces = [uuid.uuid4() for _ in range(50)]
    rollout = uuid.uuid4()
    order = shuffled(rollout, workspaces)
    assert sorted(order) == sorted(workspaces)
    assert shuffled(rollout, list(reversed(workspaces))) == order, "whatever order they were selected in"
    assert shuffled(uuid.uuid4(), workspaces) != order


@pytest.mark.parametrize(
    ("count", "percent", "kept"), [(200, 10, 20), (200, 100, 200), (7, 50, 4), (3, 1, 1), (0, 50, 0)]
)
def test_a_percentage_keeps_the_first_share_rounded_up(count: int, percent: int, kept: int) -> None:
    ordered = [uuid.uuid4() for _ in range(count)]
    assert keep_percent(ordered, percent) == ordered[:kept]


@pytest.mark.parametrize(("budget", "size", "allowed"), [(0.05, 80, 4), (0.05, 19, 0), (0.1, 10, 1), (0.5, 0, 0)])
def test_the_failure_budget_is_a_share_of_the_wave_rounded_down(budget: float, size: int, allowed: int) -> None:
    assert allowed_failures(Plan(failure_budget=budget), size) == allowed
