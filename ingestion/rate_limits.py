"""Per-API-key rate limits of the Data Ingestion and Read APIs (`CDP_INGEST_RATE_LIMITS`)."""

from __future__ import annotations

from django.conf import settings

from cdp.models import ApiKey
from cdp.ratelimit import Window, rate_limit_hit, windows_from_setting

SCOPE = "ingest"
SCOPE_LABEL = "for this API key"


def api_key_windows() -> tuple[Window, ...]:
    return windows_from_setting(settings.CDP_INGEST_RATE_LIMITS)


def api_key_rate_limit_hit(*, api_key: ApiKey) -> None:
    """Count one request of `api_key`; raise RateLimited when a window is full.

    The API counts its requests in the gate's round trip (cdp/gate.py) under the same
    names, so a payload sent from the Console counts against the same key's limits.
    """
    rate_limit_hit(
        scope=SCOPE, ident=str(api_key.pk), windows=api_key_windows(), scope_label=SCOPE_LABEL
    )
