"""What the provisioning progress page shows, computed from a workspace row."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from control_plane.reconciler.plans import plan_for
from control_plane.web.redaction import redact_text
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace

# The reconciler's conditions, in the order it establishes them, and how the page names them.
STEPS: tuple[tuple[str, str], ...] = (
    ("DatabaseReady", "Creating your database"),
    ("StorageReady", "Setting up file storage"),
    ("ComputeReady", "Starting your workspace server"),
    ("DnsReady", "Publishing your address"),
    ("Available", "Checking that your workspace answers"),
)
# How the sales console names the steps of a silo's plan on AWS (the plan gives their order).
SILO_LABELS: dict[str, str] = {
    "KeyReady": "Creating the tenant key",
    "StorageReady": "Setting up file storage",
    "DatabaseReady": "Creating the database",
    "ClusterReady": "Creating the silo's Kubernetes cluster",
    "IdentityReady": "Giving the workspace its cloud identity",
    "CertificateReady": "Issuing the TLS certificate",
    "IngressReady": "Installing the ingress controller",
    "ComputeReady": "Starting the workspace server",
    "DnsReady": "Publishing the address",
    "Available": "Checking that the workspace answers",
}
READY_STATES = frozenset({Lifecycle.trialing, Lifecycle.active})
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Step:
    """One provisioning step: ``done``, ``current`` or ``waiting``."""

    type: str
    label: str
    state: str
    message: str


@dataclass(frozen=True)
class Progress:
    """The whole progress view of one workspace."""

    state: str
    summary: str
    steps: list[Step]
    done: int
    ready: bool
    error: str | None
    attempts: int

    def as_json(self) -> dict[str, Any]:
        """The body of the status endpoint."""
        return asdict(self)


def is_ready(ws: Workspace) -> bool:
    """Running in a customer-facing state and reported available."""
    available = any(c.get("type") == "Available" and c.get("status") == "True" for c in ws.conditions or [])
    return ws.lifecycle_state in READY_STATES and available


def is_setting_up(ws: Workspace) -> bool:
    """Being provisioned: provisioning, or in a customer-facing state but not available yet."""
    return ws.lifecycle_state in (Lifecycle.provisioning, *READY_STATES) and not is_ready(ws)


def _summary(ws: Workspace, address: str, ready: bool) -> str:
    state = ws.lifecycle_state
    if ready:
        return f"{address} is ready"
    if state == Lifecycle.pending_verification:
        return "Waiting for you to confirm your email"
    if state in (Lifecycle.provisioning, *READY_STATES):
        return f"Setting up {address}"
    return f"{address} is {state.value.replace('_', ' ')}"


def steps_of(ws: Workspace, provider: str) -> tuple[tuple[str, str], ...]:
    """The steps a workspace's provisioning goes through: a silo's own on AWS (its plan's conditions, in order),
    the common ones otherwise."""
    if provider != "aws" or ws.tier != Tier.enterprise:
        return STEPS
    conditions = [step.condition for step in plan_for(provider, ws.tier.value) if step.condition]
    return tuple((condition, SILO_LABELS.get(condition, condition)) for condition in conditions)


def progress_of(ws: Workspace, base_domain: str, labels: tuple[tuple[str, str], ...] = STEPS) -> Progress:
    """The steps of ``ws`` (``labels``: which, in order, and their names) as the page shows them."""
    conditions = {c.get("type"): c for c in ws.conditions or [] if isinstance(c, dict)}
    ready = is_ready(ws)
    working = is_setting_up(ws)
    steps: list[Step] = []
    current_taken = False
    for kind, label in labels:
        condition = conditions.get(kind, {})
        if condition.get("status") == "True":
            steps.append(Step(kind, label, "done", ""))
        elif working and not current_taken:
            current_taken = True
            message = redact_text(str(condition.get("message") or ""))[:MAX_ERROR_CHARS]
            steps.append(Step(kind, label, "current", message))
        else:
            steps.append(Step(kind, label, "waiting", ""))
    error = redact_text(ws.last_error)[:MAX_ERROR_CHARS] if ws.last_error and not ready else None
    return Progress(
        state=ws.lifecycle_state.value,
        summary=_summary(ws, f"{ws.slug}.{base_domain}", ready),
        steps=steps,
        done=sum(1 for s in steps if s.state == "done"),
        ready=ready,
        error=error,
        attempts=ws.reconcile_attempts,
    )
