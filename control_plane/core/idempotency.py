"""``Idempotency-Key`` on creating POSTs: same key and body replays the first result."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control_plane.core.models import IdempotencyRecord
from control_plane.core.problems import Problem


class IdempotencyKeyReused(Problem):
    """The key was used before with a different request body."""

    def __init__(self) -> None:
        super().__init__(
            422,
            "idempotency-key-reused",
            "Idempotency key reused",
            "This Idempotency-Key was already used with a different request body",
        )


@dataclass(frozen=True)
class Outcome:
    """What a creating request answered, and whether this call replayed it."""

    status_code: int
    body: Any
    replayed: bool


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _replay(record: IdempotencyRecord, digest: str) -> Outcome:
    if record.request_digest != digest:
        raise IdempotencyKeyReused()
    return Outcome(record.status_code, record.response_body, replayed=True)


def run_once(
    session: Session, scope: str, key: str | None, payload: Any, create: Callable[[], tuple[int, Any]]
) -> Outcome:
    """Run ``create`` and commit its writes together with the key's record.

    ``create`` must not commit. If two requests race with one key, the loser's commit fails on
    the record's primary key, its writes roll back, and it replays the winner's answer.
    """
    if key is None:
        status, body = create()
        session.commit()
        return Outcome(status, body, replayed=False)
    digest = _digest(payload)
    existing = session.get(IdempotencyRecord, (scope, key))
    if existing is not None:
        return _replay(existing, digest)
    status, body = create()
    session.add(IdempotencyRecord(scope=scope, key=key, request_digest=digest, status_code=status, response_body=body))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        winner = session.get(IdempotencyRecord, (scope, key))
        if winner is None:
            raise
        return _replay(winner, digest)
    return Outcome(status, body, replayed=False)
