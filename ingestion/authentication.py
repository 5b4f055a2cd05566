"""`TOKEN` + `API_KEY` authentication for the Data Ingestion and Read APIs."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from cdp.gate import Admission, api_request_admit
from cdp.ratelimit import client_address_of
from ingestion.rate_limits import SCOPE, SCOPE_LABEL, api_key_windows


class TokenApiKeyAuthentication(BaseAuthentication):
    """Checks 1–4 in one round trip to the shared store (cdp/gate.py): the token, its API
    key, and the key's rate-limit windows, so this class also answers 429.

    `request.auth` is the Admission (the API key, through it the organization, and the
    organization's schema version); every later step takes the organization as an
    argument. Django normalises header names, so `token`/`api_key` in any case are found.
    """

    def authenticate(self, request: Request) -> tuple[Any, Admission]:
        admission = request_admit(request.META)
        return admission.api_key.membership.user, admission

    def authenticate_header(self, request: Request) -> str:
        return "TOKEN"


def request_admit(meta: dict[str, Any]) -> Admission:
    return api_request_admit(
        raw_token=meta.get("HTTP_TOKEN", "").strip(),
        raw_api_key=meta.get("HTTP_API_KEY", "").strip(),
        scope=SCOPE,
        windows=api_key_windows(),
        scope_label=SCOPE_LABEL,
        client_address=client_address_of(meta),
    )


class TokenApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = TokenApiKeyAuthentication
    name = ["token", "apiKey"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "TOKEN",
                "description": "Token from POST /api/accounts/authen.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "API_KEY",
                "description": "The API key the token was issued for.",
            },
        ]
