"""Pure planning: how many workspaces each wave takes, and which wave each selected workspace joins."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Sequence

from control_plane.rollouts.schemas import Plan


def wave_sizes(plan: Plan, total: int) -> list[int]:
    """Wave sizes for ``total`` workspaces: the canaries (wave 0, possibly empty), then ``first_wave`` growing by
    ``growth`` up to ``max_wave``; the last wave takes what is left."""
    canaries = min(plan.canaries, total)
    sizes, left, size = [canaries], total - canaries, float(plan.first_wave)
    while left > 0:
        take = min(left, max(1, min(plan.max_wave, math.floor(size))))
        sizes.append(take)
        left -= take
        size *= plan.growth
    return sizes


def shuffled(rollout_id: uuid.UUID, workspace_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """A stable pseudo-random order of the workspaces, proper to the rollout (the same for a rerun)."""
    return sorted(workspace_ids, key=lambda w: hashlib.sha256(rollout_id.bytes + w.bytes).digest())


def keep_percent(ordered: Sequence[uuid.UUID], percent: int) -> list[uuid.UUID]:
    """The first ``percent`` % of an already shuffled list, rounded up (at least one of a non-empty list)."""
    return list(ordered[: math.ceil(len(ordered) * percent / 100)])


def assign_waves(ordered: Sequence[uuid.UUID], plan: Plan) -> list[tuple[uuid.UUID, int]]:
    """Each workspace with its wave number, in order (the first ones are the canaries, wave 0)."""
    assigned: list[tuple[uuid.UUID, int]] = []
    position = 0
    for wave, size in enumerate(wave_sizes(plan, len(ordered))):
        assigned += [(w, wave) for w in ordered[position : position + size]]
        position += size
    return assigned


def allowed_failures(plan: Plan, size: int) -> int:
    """How many failed upgrades a wave of ``size`` absorbs before the rollout pauses (a canary wave: none)."""
    return 0 if size == 0 else math.floor(plan.failure_budget * size)
