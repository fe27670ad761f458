"""A rollout as the console shows it: state, reason, progress wave by wave, failures with their reasons, and the
actions its state allows; the same dictionary fills the template and the page's live JSON."""

from __future__ import annotations

from typing import Any

from control_plane.rollouts.commands import allowed
from control_plane.rollouts.models import TargetState
from control_plane.rollouts.schemas import RolloutOut, WaveProgress

STATE_ORDER = list(TargetState)


def states_text(counts: dict[TargetState, int]) -> str:
    """``3 succeeded, 1 soaking`` in the targets' order of travel (states with none left out)."""
    return ", ".join(f"{counts[s]} {s.value.replace('_', ' ')}" for s in STATE_ORDER if counts.get(s))


def _wave_label(wave: WaveProgress, canaries: int) -> str:
    return "Canaries" if wave.wave == 0 and canaries > 0 else f"Wave {wave.wave}"


def _totals(out: RolloutOut) -> dict[TargetState, int]:
    totals: dict[TargetState, int] = {}
    for wave in out.waves:
        for state, count in wave.states.items():
            totals[state] = totals.get(state, 0) + count
    return totals


def rollout_view(out: RolloutOut, *, manage: bool) -> dict[str, Any]:
    """The rollout's page content; ``actions`` only for a viewer whose role may change rollouts."""
    return {
        "id": str(out.id),
        "release": out.release,
        "state": out.state.value,
        "reason": out.reason or "",
        "targets": out.targets,
        "progress": states_text(_totals(out)),
        "created_by": out.created_by,
        "created": out.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "updated": out.updated_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "waves": [
            {
                "wave": w.wave,
                "label": _wave_label(w, out.plan.canaries),
                "size": w.size,
                "states": states_text(w.states),
            }
            for w in out.waves
        ],
        "failures": [
            {
                "wave": _wave_label(w, out.plan.canaries),
                "workspace_id": str(f.workspace_id),
                "state": f.state.value.replace("_", " "),
                "reason": f.reason or "",
            }
            for w in out.waves
            for f in w.failures
        ],
        "actions": [a.value for a in allowed(out.state)] if manage else [],
    }
