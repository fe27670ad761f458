"""The workspace lifecycle state machine, declared as data."""

from __future__ import annotations

import enum

from control_plane.core.problems import Conflict


class Lifecycle(enum.StrEnum):
    """Where a workspace is in its life (our policy, separate from billing status)."""

    pending_verification = "pending_verification"
    provisioning = "provisioning"
    trialing = "trialing"
    active = "active"
    past_due = "past_due"
    suspended = "suspended"
    hibernated = "hibernated"
    restoring = "restoring"
    pending_deletion = "pending_deletion"
    deleted = "deleted"


L = Lifecycle

TRANSITIONS: dict[Lifecycle, frozenset[Lifecycle]] = {
    L.pending_verification: frozenset({L.provisioning, L.active, L.pending_deletion}),
    L.provisioning: frozenset({L.trialing, L.active, L.pending_deletion}),
    L.trialing: frozenset({L.active, L.past_due, L.suspended, L.hibernated, L.restoring, L.pending_deletion}),
    L.active: frozenset({L.past_due, L.suspended, L.hibernated, L.restoring, L.pending_deletion}),
    L.past_due: frozenset({L.active, L.suspended, L.hibernated, L.restoring, L.pending_deletion}),
    L.suspended: frozenset({L.active, L.hibernated, L.restoring, L.pending_deletion}),
    L.hibernated: frozenset({L.trialing, L.active, L.past_due, L.suspended, L.restoring, L.pending_deletion}),
    L.restoring: frozenset({L.trialing, L.active, L.past_due, L.suspended}),
    # Cancelling a deletion returns to the state it left (remembered in ``resume_state``); a hibernated workspace's
    # deletion remembers the state hibernation paused, so cancelling starts it again.
    L.pending_deletion: frozenset(
        {L.pending_verification, L.provisioning, L.trialing, L.active, L.past_due, L.suspended, L.deleted}
    ),
    L.deleted: frozenset(),
}

# Hibernation pauses a workspace in one of these states; waking resumes exactly the state it paused (remembered in
# ``workspaces.resume_state``), so a trial stays a trial and a suspension is not lifted by a hibernate-and-wake.
HIBERNATABLE_STATES = frozenset(s for s, targets in TRANSITIONS.items() if L.hibernated in targets)

# A restore in place pauses the workspace the same way (its server stopped while its data is replaced) and resumes
# the state it left; one restored while hibernated comes back awake, in the state hibernation had paused. A deletion
# pauses it until its purge date; cancelling returns to the state it left (for a hibernated one, the state
# hibernation had paused).
PAUSED_STATES = frozenset({L.hibernated, L.restoring, L.pending_deletion})

# States in which the workspace server should be running and reachable.
RUNNING_STATES = frozenset({L.provisioning, L.trialing, L.active, L.past_due, L.suspended})


class IllegalTransition(Conflict):
    """A transition the state machine does not allow."""

    def __init__(self, current: Lifecycle, target: Lifecycle) -> None:
        super().__init__(
            "illegal-transition",
            f"A workspace cannot go from {current.value} to {target.value}",
            current_state=current.value,
            requested_state=target.value,
            allowed_states=sorted(s.value for s in TRANSITIONS[current]),
        )


class NotHibernated(Conflict):
    """Waking a workspace that is not hibernated."""

    def __init__(self, current: Lifecycle) -> None:
        super().__init__(
            "illegal-transition",
            f"Only a hibernated workspace can be woken; this one is {current.value}",
            current_state=current.value,
            requested_action="wake",
            allowed_states=sorted(s.value for s in TRANSITIONS[current]),
        )


class NotPendingDeletion(Conflict):
    """Cancelling or purging the deletion of a workspace that is not pending deletion."""

    def __init__(self, current: Lifecycle, action: str) -> None:
        super().__init__(
            "illegal-transition",
            f"Only a workspace pending deletion can have its deletion {action}; this one is {current.value}",
            current_state=current.value,
            requested_action=action,
            allowed_states=sorted(s.value for s in TRANSITIONS[current]),
        )


def check_transition(current: Lifecycle, target: Lifecycle) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> target`` is declared."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)


def resume_state_on_entering(
    current: Lifecycle, current_resume: Lifecycle | None, target: Lifecycle
) -> Lifecycle | None:
    """``resume_state`` after ``current -> target``: set while paused (hibernated, restoring or pending deletion),
    else None."""
    if target not in PAUSED_STATES:
        return None
    return current_resume if current in PAUSED_STATES else current


def wake_target(current: Lifecycle, resume_state: Lifecycle | None) -> Lifecycle:
    """The state waking returns to: the one hibernation paused (409 unless ``current`` is hibernated)."""
    if current != L.hibernated or resume_state is None:
        raise NotHibernated(current)
    check_transition(current, resume_state)
    return resume_state


def cancel_target(current: Lifecycle, resume_state: Lifecycle | None) -> Lifecycle:
    """The state cancelling a deletion returns to: the one deletion left (409 unless pending deletion)."""
    if current != L.pending_deletion or resume_state is None:
        raise NotPendingDeletion(current, "cancelled")
    check_transition(current, resume_state)
    return resume_state
