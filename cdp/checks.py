"""System checks of the deployment settings (run by `manage.py check` and every command
that serves or migrates)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

PER_PROCESS_CACHES = frozenset(
    {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    }
)


@register()
def shared_cache_check(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Several worker processes must share one cache: it holds the verified tokens (whose
    revocation must reach every worker), the rate-limit counters and the schema versions
    that tell each worker its copy of the models is stale."""
    backend = settings.CACHES["default"]["BACKEND"]
    if settings.DEBUG or backend not in PER_PROCESS_CACHES:
        return []
    return [
        Error(
            f"The default cache is {backend.rsplit('.', 1)[-1]}, which each worker process "
            "keeps for itself: token revocation, rate limits and model changes would not "
            "reach the other workers.",
            hint="Set CACHE_URL to a shared cache, e.g. redis://127.0.0.1:6379/0 "
            "(or DEBUG=true for development on one process).",
            id="cdp.E001",
        )
    ]
