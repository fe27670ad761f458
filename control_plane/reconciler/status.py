"""Pure helpers for a workspace's observed status: conditions, backoff and error text."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import psycopg

# Every workspace reports the five of design section 4; an enterprise silo adds its key, its cluster, its TLS
# certificate and its ingress (controller and load balancer).
CONDITION_TYPES = (
    "KeyReady",
    "DatabaseReady",
    "StorageReady",
    "ClusterReady",
    "CertificateReady",
    "IngressReady",
    "ComputeReady",
    "DnsReady",
    "Available",
)
REPORTED_BY_ALL = ("DatabaseReady", "StorageReady", "ComputeReady", "DnsReady", "Available")
MAX_ERROR_CHARS = 500
MAX_BACKOFF_EXPONENT = 30


def set_condition(
    conditions: Iterable[dict[str, Any]] | None,
    type_: str,
    ok: bool,
    reason: str,
    message: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """``conditions`` with ``type_`` set; ``last_transition_at`` moves only when the status flips."""
    by_type = {c["type"]: c for c in conditions or [] if "type" in c}
    status = "True" if ok else "False"
    previous = by_type.get(type_)
    flipped = previous is None or previous.get("status") != status
    by_type[type_] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "last_transition_at": now.isoformat() if flipped else previous["last_transition_at"],  # type: ignore[index]
    }
    order = {t: i for i, t in enumerate(CONDITION_TYPES)}
    return sorted(by_type.values(), key=lambda c: (order.get(c["type"], len(order)), c["type"]))


def backoff_seconds(attempts: int, base: float, maximum: float, jitter: float | None = None) -> float:
    """``min(max, base * 2**attempts)`` scaled by a jitter in [0.5, 1.0]."""
    factor = random.uniform(0.5, 1.0) if jitter is None else jitter
    exponential = base * float(2 ** min(attempts, MAX_BACKOFF_EXPONENT))
    return float(min(maximum, exponential) * factor)


def short_error(where: str, exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """One line about ``exc`` for ``last_error``: no query text, no secrets, bounded length."""
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        text = exc.diag.message_primary
    else:
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else ""
    message = f"{where}: {type(exc).__name__}" + (f": {text}" if text else "")
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message[:MAX_ERROR_CHARS]
