"""Fixed-window rate limits kept in PostgreSQL, so every API replica shares them."""

from __future__ import annotations

import time

from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.requests import Request

from control_plane.core.problems import Problem


class RateLimited(Problem):
    """Too many requests in the current window; answered with a ``Retry-After`` header."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            429,
            "rate-limited",
            "Too many requests",
            f"Try again in {retry_after} seconds",
            retry_after=retry_after,
        )
        self.headers = {"Retry-After": str(retry_after)}


def client_address(request: Request) -> str:
    """The peer address as the server sees it (what per-address rate limits count)."""
    return request.client.host if request.client else "unknown"


def hit(session: Session, key: str, limit: int, window_seconds: int) -> None:
    """Count one request for ``key``; raise :class:`RateLimited` past ``limit`` (committed)."""
    now = int(time.time())
    window_start = now - now % window_seconds
    hits = session.execute(
        text(
            "INSERT INTO rate_limit_counters (key, window_start, hits) VALUES (:k, :w, 1) "
            "ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limit_counters.hits + 1 "
            "RETURNING hits"
        ),
        {"k": key, "w": window_start},
    ).scalar_one()
    session.execute(
        text("DELETE FROM rate_limit_counters WHERE key = :k AND window_start < :w"),
        {"k": key, "w": window_start},
    )
    session.commit()
    if hits > limit:
        raise RateLimited(window_start + window_seconds - now)
