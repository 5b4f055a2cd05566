"""The state every worker process must agree on: verified tokens, rate-limit counters and
the organizations' schema versions.

When the cache is Redis (`CACHE_URL`), this speaks to Redis directly, with redis-py, so
that everything one API request needs from it travels in one pipeline: one round trip
(`SharedStore.exchange`). Django's cache API has no pipeline, and its Redis backend
builds a client per call. Any other cache (local memory in development, one process)
gets the same operations through Django's cache API, one call at a time.

Values are bytes; callers choose the encoding. Keys are used as given (no Django key
prefix or version), so every worker, whatever its cache settings, names the same keys.

Redis that cannot be reached (refused, reset, timed out) raises `StoreUnavailable`, with
redis-py's error as its cause: the APIs answer it 503 (cdp/errors.py).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.core.cache import caches
from django.core.signals import setting_changed

REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"


class StoreUnavailable(Exception):
    """The shared store could not be reached; `__cause__` is the client's own error."""


@dataclass(frozen=True)
class Counter:
    """A counter incremented by one, which expires `ttl` seconds after it was created."""

    key: str
    ttl: int


@dataclass(frozen=True)
class Put:
    key: str
    value: bytes
    ttl: int | None  # seconds; None keeps it until it is replaced


class SharedStore:
    """Django's cache: correct for one process (local memory) or any shared backend, one
    call per operation. `RedisStore` does the same in one round trip."""

    def exchange(
        self,
        *,
        puts: Sequence[Put] = (),
        gets: Sequence[str] = (),
        counters: Sequence[Counter] = (),
    ) -> tuple[list[bytes | None], list[int]]:
        """Write `puts`, then read `gets` and increment `counters`: the values read and the
        counts after incrementing, in the order asked."""
        cache = caches["default"]
        for put in puts:
            cache.set(put.key, put.value, timeout=put.ttl)
        values = [cache.get(key) for key in gets]
        counts = []
        for counter in counters:
            cache.add(counter.key, 0, timeout=counter.ttl)
            try:
                counts.append(cache.incr(counter.key))
            except ValueError:  # evicted between add and incr
                cache.set(counter.key, 1, timeout=counter.ttl)
                counts.append(1)
        return values, counts

    def add(self, key: str, value: bytes) -> bytes:
        """Store `value` unless the key holds one; return the value the key holds."""
        cache = caches["default"]
        cache.add(key, value, timeout=None)
        held = cache.get(key)
        return value if held is None else held

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        found = caches["default"].get_many(list(keys))
        return [found.get(key) for key in keys]

    def decrement(self, keys: Sequence[str]) -> None:
        cache = caches["default"]
        for key in keys:
            with contextlib.suppress(ValueError):  # expired meanwhile: nothing to take back
                cache.decr(key)

    def delete(self, keys: Sequence[str]) -> None:
        if keys:
            caches["default"].delete_many(list(keys))


# One request's exchange as one command: the writes, the reads and the counters, with
# each counter's expiry set when it is created (what `INCR` then `EXPIRE NX` do). A
# pipeline of those commands is one round trip too, but costs a dozen commands to pack,
# send and run; the script costs one. KEYS: puts, gets, counters; ARGV: the number of
# puts and of gets, then each put's value and seconds to live (0: none), then each
# counter's seconds to live.
_EXCHANGE_LUA = """
local puts, gets = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, puts do
  local ttl = tonumber(ARGV[2 + 2 * i])
  if ttl > 0 then
    redis.call('SET', KEYS[i], ARGV[1 + 2 * i], 'EX', ttl)
  else
    redis.call('SET', KEYS[i], ARGV[1 + 2 * i])
  end
end
for i = puts + 1, puts + gets do
  out[#out + 1] = redis.call('GET', KEYS[i])
end
local first = 2 + 2 * puts
for i = puts + gets + 1, #KEYS do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then
    redis.call('EXPIRE', KEYS[i], ARGV[first + i - puts - gets])
  end
  out[#out + 1] = count
end
return out
"""


class RedisStore(SharedStore):
    """`prefix` (the cache's KEY_PREFIX) is put before every key, so that deployments or
    test runs sharing one Redis database keep apart."""

    def __init__(self, url: str, prefix: str = "", options: dict[str, Any] | None = None) -> None:
        import redis

        self._client = redis.Redis.from_url(url, **(options or {}))
        self._prefix = f"{prefix}:" if prefix else ""
        # EVALSHA, loading the script once if the server does not know it.
        self._exchange = self._client.register_script(_EXCHANGE_LUA)
        # What redis-py raises when the server cannot be reached (its BusyLoadingError and
        # AuthenticationError are ConnectionErrors too); any other error is a bug's.
        self._unreachable = (redis.ConnectionError, redis.TimeoutError)

    def key(self, key: str) -> str:
        """The name a key has in Redis."""
        return self._prefix + key

    def exchange(
        self,
        *,
        puts: Sequence[Put] = (),
        gets: Sequence[str] = (),
        counters: Sequence[Counter] = (),
    ) -> tuple[list[bytes | None], list[int]]:
        name = self.key
        keys = [name(p.key) for p in puts] + [name(k) for k in gets]
        keys += [name(c.key) for c in counters]
        args: list[Any] = [len(puts), len(gets)]
        for put in puts:
            args += [put.value, put.ttl or 0]
        args += [c.ttl for c in counters]
        try:
            replies = self._exchange(keys=keys, args=args)
        except self._unreachable as error:
            raise _unavailable(error) from error
        return replies[: len(gets)], [int(n) for n in replies[len(gets) :]]

    def add(self, key: str, value: bytes) -> bytes:
        pipeline = self._client.pipeline(transaction=False)
        pipeline.set(self.key(key), value, nx=True)
        pipeline.get(self.key(key))
        try:
            return pipeline.execute()[1]
        except self._unreachable as error:
            raise _unavailable(error) from error

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            # Bytes: the client is made without decode_responses (redis-py types both).
            return cast("list[bytes | None]", self._client.mget([self.key(k) for k in keys]))
        except self._unreachable as error:
            raise _unavailable(error) from error

    def decrement(self, keys: Sequence[str]) -> None:
        if keys:
            pipeline = self._client.pipeline(transaction=False)
            for key in keys:
                pipeline.decr(self.key(key))
            try:
                pipeline.execute()
            except self._unreachable as error:
                raise _unavailable(error) from error

    def delete(self, keys: Sequence[str]) -> None:
        if keys:
            try:
                self._client.delete(*[self.key(k) for k in keys])
            except self._unreachable as error:
                raise _unavailable(error) from error

    def client(self) -> Any:
        """redis-py's client, for tests and operators' tools."""
        return self._client


def _unavailable(error: Exception) -> StoreUnavailable:
    # The class only: redis-py's message names the host and port, which stay in the cause.
    return StoreUnavailable(f"Redis cannot be reached ({type(error).__name__})")


_lock = threading.Lock()
_store: SharedStore | None = None


# Options of Django's Redis cache that are its own, not redis-py's connection options.
_CACHE_ONLY_OPTIONS = frozenset({"serializer", "pool_class", "parser_class"})


def store_for(config: dict[str, Any]) -> SharedStore:
    """The store for a cache configuration (Redis when the cache is Redis), connected with
    the cache's OPTIONS (socket timeouts, a password, …) as Django's Redis cache is."""
    if config.get("BACKEND") != REDIS_BACKEND:
        return SharedStore()
    location = config["LOCATION"]
    # Django's Redis backend writes to the first of several servers; so does this.
    url = location[0] if isinstance(location, list | tuple) else location
    options = {
        name: value
        for name, value in config.get("OPTIONS", {}).items()
        if name not in _CACHE_ONLY_OPTIONS
    }
    return RedisStore(url, config.get("KEY_PREFIX", ""), options)


def shared_store() -> SharedStore:
    """The store for the current settings."""
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                _store = store_for(settings.CACHES["default"])
    return _store


def _reset(*, setting: str, **kwargs: Any) -> None:
    global _store
    if setting == "CACHES":
        _store = None


setting_changed.connect(_reset, dispatch_uid="shared_store_reset")
