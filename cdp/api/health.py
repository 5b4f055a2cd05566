"""Health endpoints for load balancers and orchestrators: no authentication, no rate
limit, no request log.

- `/healthz`: the process answers (liveness). It touches neither the database nor the
  cache, so a database outage does not get every web process restarted.
- `/readyz`: the process can serve (readiness): a `SELECT 1` on the database and a set
  and get on the shared cache. 503 names the check that failed; the error's details go
  to the log, not to the (unauthenticated) response. A connection that failed is dropped,
  so the next probe (or request) reconnects once the database is back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from django.core.cache import cache
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from cdp.errors import close_broken_connections

logger = logging.getLogger("cdp.health")

READY_CACHE_KEY = "cdp:readyz:"


def _database_check() -> None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            if cursor.fetchone() != (1,):
                raise RuntimeError("SELECT 1 answered something else")
    except Exception:
        close_broken_connections(connections)
        raise


def _cache_check() -> None:
    # A key of its own per call, so concurrent probes never read each other's value.
    key, value = READY_CACHE_KEY + uuid.uuid4().hex, uuid.uuid4().hex
    cache.set(key, value, timeout=10)
    try:
        if cache.get(key) != value:
            raise RuntimeError("the value written was not read back")
    finally:
        cache.delete(key)


CHECKS: dict[str, Callable[[], None]] = {"database": _database_check, "cache": _cache_check}


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as error:  # any failure means "not ready"; never a 500
            logger.warning("readiness check %s failed: %r", name, error)
            checks[name] = f"failed: {type(error).__name__}"
        else:
            checks[name] = "ok"
    if all(result == "ok" for result in checks.values()):
        return JsonResponse({"status": "ready", "checks": checks})
    return JsonResponse({"status": "unavailable", "checks": checks}, status=503)
