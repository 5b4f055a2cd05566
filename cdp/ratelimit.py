"""Fixed-window counters in the shared cache, for the APIs' rate limits.

DRF's `SimpleRateThrottle` keeps a list of timestamps that it reads, edits and writes
back, which loses counts when several worker processes race; these counters use the
cache's atomic `incr` instead (Redis INCR when `CACHE_URL` points at Redis), so every
worker sees the same count.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from cdp.errors import RateLimited

_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: int

    @property
    def label(self) -> str:
        for unit_seconds, unit in _UNITS:
            if self.seconds % unit_seconds == 0:
                count = self.seconds // unit_seconds
                per = unit if count == 1 else f"{count} {unit}s"
                return f"{self.limit} requests per {per}"
        return f"{self.limit} requests per {self.seconds} seconds"  # pragma: no cover


def windows_from_setting(value: Iterable[Sequence[int]]) -> tuple[Window, ...]:
    return tuple(Window(int(limit), int(seconds)) for limit, seconds in value)


def _bucket_keys(scope: str, ident: str, windows: Sequence[Window], now: float) -> list[str]:
    return [f"rl:{scope}:{ident}:{w.seconds}:{int(now // w.seconds)}" for w in windows]


def _retry_after(window: Window, now: float) -> int:
    return max(1, math.ceil((int(now // window.seconds) + 1) * window.seconds - now))


def _refuse(scope_label: str, window: Window, now: float) -> RateLimited:
    return RateLimited(
        f"Rate limit exceeded: {window.label} {scope_label}",
        retry_after=_retry_after(window, now),
    )


def rate_limit_hit(
    *, scope: str, ident: str, windows: Sequence[Window], scope_label: str = ""
) -> None:
    """Count one request in every window; raise RateLimited if one of them is over.

    A refused request is taken back out of the counts, so retrying clients are not
    punished in the longer windows for requests that were never served.
    """
    now = time.time()
    keys = _bucket_keys(scope, ident, windows, now)
    counts = _increment(keys, windows)
    for count, window in zip(counts, windows, strict=True):
        if count > window.limit:
            _decrement(keys)
            raise _refuse(scope_label, window, now)


def _redis_client(keys: Sequence[str]) -> tuple[Any, list[str]] | None:
    """Redis's own client and the cache's full key names, when the cache is Redis."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    names = [backend.make_and_validate_key(key) for key in keys]
    return backend._cache.get_client(names[0], write=True), names


def _increment(keys: Sequence[str], windows: Sequence[Window]) -> list[int]:
    """INCR every window's counter; on Redis in one round trip (a pipeline)."""
    redis = _redis_client(keys)
    if redis is not None:
        client, names = redis
        pipeline = client.pipeline(transaction=False)
        for name, window in zip(names, windows, strict=True):
            pipeline.incr(name)
            pipeline.expire(name, window.seconds + 1, nx=True)
        return [int(n) for n in pipeline.execute()[::2]]
    counts = []
    for key, window in zip(keys, windows, strict=True):
        cache.add(key, 0, timeout=window.seconds + 1)
        try:
            counts.append(cache.incr(key))
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, timeout=window.seconds + 1)
            counts.append(1)
    return counts


def _decrement(keys: Sequence[str]) -> None:
    redis = _redis_client(keys)
    if redis is not None:
        client, names = redis
        pipeline = client.pipeline(transaction=False)
        for name in names:
            pipeline.decr(name)
        pipeline.execute()
        return
    for key in keys:
        with contextlib.suppress(ValueError):
            cache.decr(key)


def rate_limit_check(
    *, scope: str, ident: str, windows: Sequence[Window], scope_label: str = ""
) -> None:
    """Raise RateLimited if a window is already full, without counting this request."""
    now = time.time()
    keys = _bucket_keys(scope, ident, windows, now)
    counts = cache.get_many(keys)
    for key, window in zip(keys, windows, strict=True):
        if counts.get(key, 0) >= window.limit:
            raise _refuse(scope_label, window, now)


def rate_limit_count(*, scope: str, ident: str, windows: Sequence[Window]) -> None:
    """Count one event (a failed attempt) in every window."""
    now = time.time()
    for key, window in zip(_bucket_keys(scope, ident, windows, now), windows, strict=True):
        cache.add(key, 0, timeout=window.seconds + 1)
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, timeout=window.seconds + 1)
