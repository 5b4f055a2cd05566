"""`TOKEN` + `API_KEY` authentication for the Data Ingestion and Read APIs (DESIGN §6)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from cdp import services
from cdp.errors import Unauthorized
from cdp.models import ApiKey


class TokenApiKeyAuthentication(BaseAuthentication):
    """Resolves the API key (and through it the organization) once per request.

    `request.auth` is the ApiKey; every later step takes its organization as an argument.
    Django normalises header names, so `token`/`api_key` sent in any case are found.
    """

    def authenticate(self, request: Request) -> tuple[Any, ApiKey]:
        raw_token = request.META.get("HTTP_TOKEN", "").strip()
        raw_api_key = request.META.get("HTTP_API_KEY", "").strip()
        if not raw_token or not raw_api_key:
            raise Unauthorized("TOKEN and API_KEY headers are required")
        try:
            api_key = services.token_verify(raw_token=raw_token, raw_api_key=raw_api_key)
        except services.TokenInvalid:
            raise Unauthorized("Invalid token or API key") from None
        except services.TokenExpired:
            raise Unauthorized("Token has expired") from None
        return api_key.membership.user, api_key

    def authenticate_header(self, request: Request) -> str:
        return "TOKEN"


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
