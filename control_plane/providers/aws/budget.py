"""The shared AWS call budget: calls per second per (cell, AWS service) that every control-plane process respects
together, and the counts of calls and throttling errors ``/metrics`` shows.

A token bucket per (cell, service) lives in Redis; one Lua script refills it from Redis's clock (one clock for
every process) and takes a token, or says how long until one is there. :class:`CallBudget` hooks into botocore's
events of each client, so no call site changes: ``before-send`` (every HTTP attempt, retries included, since
each counts against AWS's own limits) waits for a token, at most ``max_wait`` seconds, then a ProviderError (the
reconciler retries later); ``needs-retry`` counts throttling answers, which botocore's ``standard`` retry mode
retries with exponential backoff and full jitter. The cell is :func:`control_plane.providers.scope.current_cell`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from control_plane.core import fleet_counters
from control_plane.core.settings import Settings
from control_plane.providers.base import ProviderError
from control_plane.providers.scope import current_cell

log = logging.getLogger(__name__)
THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "SlowDown", "TooManyRequests"}
)
THROTTLING_STATUSES = frozenset({429, 503})
CALLS, THROTTLED, WAITED = "aws_calls", "aws_throttled", "aws_budget_wait_seconds"
"""Counter names (labels: cell, service)."""
USED_SECONDS_KEPT = 600
"""How long the per-second grant counts (the budget's own accounting, read by ``/metrics``) are kept."""
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(b[1]), tonumber(b[2])
if tokens == nil or at == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
if tokens < 1 then
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', now))
  return string.format('%.6f', (1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens - 1), 'at', string.format('%.6f', now))
redis.call('EXPIRE', KEYS[1], 3600)
local used = KEYS[2] .. ':' .. t[1]
redis.call('INCR', used)
redis.call('EXPIRE', used, tonumber(ARGV[4]))
redis.call('HINCRBYFLOAT', KEYS[3], ARGV[3], 1)
return '0'
"""


@dataclass
class CallBudget:
    """Calls per second per (cell, service), shared through Redis; ``url`` empty = no budget and no counts."""

    url: str
    environment: str
    rates: Mapping[str, float]
    default_rate: float
    burst_seconds: float = 1.0
    max_wait: float = 30.0
    _script: Any = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> CallBudget:
        """The budget ``settings`` configure."""
        return cls(
            url=settings.redis_url,
            environment=settings.aws_environment,
            rates=settings.aws_budget_rates,
            default_rate=settings.aws_budget_default_rate,
            burst_seconds=settings.aws_budget_burst_seconds,
            max_wait=settings.aws_budget_max_wait_seconds,
        )

    def rate(self, service: str) -> float:
        """Calls per second ``service`` may take per cell."""
        return self.rates.get(service, self.default_rate)

    def bucket(self, cell: str, service: str) -> str:
        """The Redis hash of (cell, service)'s tokens."""
        return f"canopy:{self.environment}:budget:{cell}:{service}"

    def used_key(self, cell: str, service: str, second: int) -> str:
        """The count of calls (cell, service) took in the Unix second ``second`` (by Redis's clock)."""
        return f"canopy:{self.environment}:budget-used:{cell}:{service}:{second}"

    def hook(self, client: Any, service: str) -> None:
        """Make ``client``'s calls take from the budget of ``service`` and count its throttling answers."""
        if not self.url:
            return
        client.meta.events.register("before-send", lambda **_: self.take(service))
        client.meta.events.register("needs-retry", lambda **kwargs: self._count_throttled(service, kwargs))

    def take(self, service: str) -> None:
        """Wait for a token of (current cell, ``service``); a ProviderError after ``max_wait`` seconds. If Redis
        cannot be reached the call goes ahead (a warning): the budget protects AWS's limits, it is not a gate."""
        cell = current_cell()
        rate = self.rate(service)
        deadline = time.monotonic() + self.max_wait
        waited = 0.0
        try:
            while (wait := self._try_take(cell, service, rate)) > 0:
                if time.monotonic() + wait > deadline:
                    raise ProviderError(
                        f"AWS {service} call budget of cell {cell} ({rate:g}/s) had no room for {self.max_wait:g}s;"
                        " will retry"
                    )
                time.sleep(wait)
                waited += wait
        except redis.RedisError as e:
            log.warning("AWS call budget unavailable (%s); %s call made without it", type(e).__name__, service)
        if waited:
            fleet_counters.add_to(self.url, self.environment, WAITED, cell, service, by=waited)

    def _try_take(self, cell: str, service: str, rate: float) -> float:
        if self._script is None:
            self._script = fleet_counters.connection(self.url).register_script(TAKE)
        keys = [
            self.bucket(cell, service),
            f"canopy:{self.environment}:budget-used:{cell}:{service}",
            fleet_counters.key(self.environment),
        ]
        burst = max(1.0, rate * self.burst_seconds)
        args = [rate, burst, fleet_counters.field(CALLS, cell, service), USED_SECONDS_KEPT]
        return float(self._script(keys=keys, args=args))

    def _count_throttled(self, service: str, kwargs: dict[str, Any]) -> None:
        response = kwargs.get("response")
        if response is None:
            return
        http, parsed = response
        code = str(parsed.get("Error", {}).get("Code", "")) if isinstance(parsed, dict) else ""
        if code in THROTTLING_CODES or http.status_code in THROTTLING_STATUSES:
            fleet_counters.add_to(self.url, self.environment, THROTTLED, current_cell(), service)
