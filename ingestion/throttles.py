"""Per-API-key rate limits of the Data Ingestion API (DESIGN §6, `CDP_INGEST_RATE_LIMITS`)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from cdp.models import ApiKey
from cdp.ratelimit import rate_limit_hit, windows_from_setting


class ApiKeyRateThrottle(BaseThrottle):
    """Counts every authenticated request of an API key in each window of the setting.

    Raises RateLimited (429, naming the full window) instead of returning False, so the
    response carries our headers and body rather than DRF's.
    """

    scope = "ingest"

    def allow_request(self, request: Request, view: APIView) -> bool:
        api_key_rate_limit_hit(api_key=request.auth)
        return True


def api_key_rate_limit_hit(*, api_key: ApiKey) -> None:
    """Count one ingest request of `api_key`; raise RateLimited when a window is full.

    The HTTP endpoint (through the throttle above) and the Console's test form share it,
    so a payload sent from the Console counts against the same key's limits.
    """
    rate_limit_hit(
        scope=ApiKeyRateThrottle.scope,
        ident=str(api_key.pk),
        windows=windows_from_setting(settings.CDP_INGEST_RATE_LIMITS),
        scope_label="for this API key",
    )
