"""Counters every control-plane process adds to and ``/metrics`` reads: one Redis hash per environment.

Workers are separate processes (and machines), so their counts cannot live in the API process's own
prometheus_client registry; a shared Redis hash (``HINCRBYFLOAT``, monotonic) is read at each scrape instead. An
unset ``CANOPY_REDIS_URL`` turns counting off.
"""

from __future__ import annotations

import functools
import logging

import redis

from control_plane.core.settings import get_settings

log = logging.getLogger(__name__)
SEPARATOR = "|"
"""Joins a counter's name and label values into one hash field (``reconciles|signup``)."""


@functools.cache
def connection(url: str) -> redis.Redis:
    """One client (with its connection pool) per URL and process."""
    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0, decode_responses=True)


def key(environment: str) -> str:
    """The hash of ``environment``'s counters."""
    return f"canopy:{environment}:counters"


def field(name: str, *labels: str) -> str:
    """The hash field of counter ``name`` with ``labels``."""
    return SEPARATOR.join((name, *labels))


def add(name: str, *labels: str, by: float = 1.0) -> None:
    """Add ``by`` to a counter; counting never fails the work it counts (a warning if Redis cannot be reached)."""
    settings = get_settings()
    add_to(settings.redis_url, settings.aws_environment, name, *labels, by=by)


def add_to(url: str, environment: str, name: str, *labels: str, by: float = 1.0) -> None:
    """:func:`add` to the counters of ``environment`` in the Redis at ``url`` (empty: not counted)."""
    if not url:
        return
    try:
        connection(url).hincrbyfloat(key(environment), field(name, *labels), by)
    except redis.RedisError as e:
        log.warning("counter %s not counted: %s", name, type(e).__name__)


def read() -> dict[tuple[str, ...], float]:
    """Every counter, by (name, *labels); empty when counting is off."""
    settings = get_settings()
    if not settings.redis_url:
        return {}
    raw = connection(settings.redis_url).hgetall(key(settings.aws_environment))
    return {tuple(str(k).split(SEPARATOR)): float(v) for k, v in raw.items()}
