"""Fixed-window counters in the shared store, for the APIs' rate limits.

DRF's `SimpleRateThrottle` keeps a list of timestamps that it reads, edits and writes
back, which loses counts when several worker processes race; these counters are atomic
increments in the shared store (Redis INCR), so every worker sees the same count, and
the ingest path increments them in the same round trip as its other reads
(`cdp/gate.py`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from cdp.errors import RateLimited
from cdp.shared_store import Counter, shared_store

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


def window_now() -> float:
    """The clock of the windows (epoch seconds)."""
    return time.time()


def window_counters(
    *, scope: str, ident: str, windows: Sequence[Window], now: float
) -> list[Counter]:
    """One counter per window for the current bucket of each, living one second longer."""
    return [
        Counter(f"rl:{scope}:{ident}:{w.seconds}:{int(now // w.seconds)}", w.seconds + 1)
        for w in windows
    ]


def _retry_after(window: Window, now: float) -> int:
    return max(1, math.ceil((int(now // window.seconds) + 1) * window.seconds - now))


def _refusal(scope_label: str, window: Window, now: float) -> RateLimited:
    return RateLimited(
        f"Rate limit exceeded: {window.label} {scope_label}".rstrip(),
        retry_after=_retry_after(window, now),
    )


def rate_limit_refusal(
    *,
    counts: Sequence[int],
    counters: Sequence[Counter],
    windows: Sequence[Window],
    now: float,
    scope_label: str = "",
) -> RateLimited | None:
    """After `counters` were incremented to `counts`: the refusal naming the first full
    window, with this request taken back out of every count (so a client retrying
    against a full window is not punished in the longer ones), or None."""
    for count, window in zip(counts, windows, strict=True):
        if count > window.limit:
            shared_store().decrement([c.key for c in counters])
            return _refusal(scope_label, window, now)
    return None


def rate_limit_hit(
    *, scope: str, ident: str, windows: Sequence[Window], scope_label: str = ""
) -> None:
    """Count one request in every window; raise RateLimited if one of them is over."""
    now = time.time()
    counters = window_counters(scope=scope, ident=ident, windows=windows, now=now)
    _values, counts = shared_store().exchange(counters=counters)
    refusal = rate_limit_refusal(
        counts=counts, counters=counters, windows=windows, now=now, scope_label=scope_label
    )
    if refusal is not None:
        raise refusal


def client_address_of(meta: Mapping[str, Any]) -> str:
    """The client's address, from a request's META. Behind `CDP_TRUSTED_PROXIES` reverse
    proxies (each appending to X-Forwarded-For), the address the outermost trusted proxy
    saw; the entries before it are the client's own claims and are not trusted."""
    proxies = settings.CDP_TRUSTED_PROXIES
    if proxies > 0:
        forwarded = [a.strip() for a in meta.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return meta.get("REMOTE_ADDR", "") or "unknown"
