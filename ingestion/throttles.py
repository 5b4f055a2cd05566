"""Per-API-key rate limits of the Data Ingestion API (DESIGN §6, `CDP_INGEST_RATE_LIMITS`)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from cdp.ratelimit import rate_limit_hit, windows_from_setting


class ApiKeyRateThrottle(BaseThrottle):
    """Counts every authenticated request of an API key in each window of the setting.

    Raises RateLimited (429, naming the full window) instead of returning False, so the
    response carries our headers and body rather than DRF's.
    """

    scope = "ingest"

    def allow_request(self, request: Request, view: APIView) -> bool:
        api_key = request.auth
        rate_limit_hit(
            scope=self.scope,
            ident=str(api_key.pk),
            windows=windows_from_setting(settings.CDP_INGEST_RATE_LIMITS),
            scope_label="for this API key",
        )
        return True
