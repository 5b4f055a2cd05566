"""The Authentication API: `POST /api/accounts/authen`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp import services
from cdp.errors import MissingInfo, Unauthorized
from cdp.ratelimit import (
    Window,
    client_address_of,
    rate_limit_refusal,
    window_counters,
    window_now,
    windows_from_setting,
)
from cdp.request_body import body_read, json_parse
from cdp.shared_store import Counter, shared_store

AUTHEN_SCOPE = "authen"


def _body_parse(request: HttpRequest) -> Any:
    """The body's JSON, parsed as the ingest endpoint parses its own (orjson: strict
    UTF-8, no NaN or Infinity, no lone surrogates, nesting at most 1024 deep), each
    refusal a 400 INVALID_JSON. An empty body is no credentials ({}), as it always was;
    a body that is JSON but not an object names none either (MISSING_INFO follows)."""
    # Django's limit of what a request may hold in memory (None: no limit).
    body = body_read(request, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if not body:
        return {}
    return json_parse(body, request.META.get("CONTENT_TYPE", ""))


def _text(body: Any, name: str) -> str:
    value = body.get(name) if isinstance(body, dict) else None
    return value.strip() if isinstance(value, str) else ""


def _epoch_ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000)


def _failure_counters(
    username: str, request: Request, windows: Sequence[Window], now: float
) -> tuple[list[Counter], list[Counter]]:
    """The failed-attempt counters of this attempt: per (username, client address), and
    per client address. The username is hashed: personal data need not sit in the cache
    in clear."""
    address = client_address_of(request.META)
    user = hashlib.sha256(username.lower().encode()).hexdigest()[:32]
    return (
        window_counters(
            scope=f"{AUTHEN_SCOPE}:user", ident=f"{user}:{address}", windows=windows, now=now
        ),
        window_counters(scope=f"{AUTHEN_SCOPE}:addr", ident=address, windows=windows, now=now),
    )


# Every refusal's body (the shape of cdp/errors.py).
_ERROR_BODY = inline_serializer(
    "AuthenErrorBody",
    {
        "success": serializers.BooleanField(help_text="Always false."),
        "errorCode": serializers.CharField(),
        "message": serializers.CharField(),
        "requestId": serializers.CharField(help_text="Equals the X-Request-Id header."),
    },
)


class AuthenticationView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        operation_id="authenticate",
        summary="Exchange a username, API key and group key for a 30-minute token",
        request=inline_serializer(
            "AuthenRequest",
            {
                "username": serializers.CharField(),
                "apiKey": serializers.CharField(),
                "cdpGKey": serializers.CharField(),
            },
        ),
        responses={
            200: inline_serializer(
                "AuthenResponse",
                {
                    "success": serializers.BooleanField(),
                    "status": serializers.CharField(),
                    "token": serializers.CharField(),
                    "issuedAt": serializers.IntegerField(),
                    "expiredAt": serializers.IntegerField(),
                    "expiredAfter": serializers.IntegerField(),
                },
            ),
            400: OpenApiResponse(
                _ERROR_BODY,
                description="MISSING_INFO: `Username and ApiKey are required` or "
                "`Organization Context is not set`; INVALID_JSON: the body is not a JSON "
                "object in UTF-8, or its Content-Type is not JSON",
            ),
            401: OpenApiResponse(
                _ERROR_BODY,
                description="UNAUTHORIZED: `Invalid credentials`, any wrong combination",
            ),
            408: OpenApiResponse(
                _ERROR_BODY,
                description="REQUEST_TIMEOUT: the body did not arrive within "
                "CDP_REQUEST_BODY_TIMEOUT seconds of the headers (answered by the production "
                "server's guard); the connection is closed",
            ),
            413: OpenApiResponse(
                _ERROR_BODY, description="PAYLOAD_TOO_LARGE: the body is over the server's limit"
            ),
            429: OpenApiResponse(
                _ERROR_BODY,
                description="RATE_LIMITED: too many failed attempts for this username from "
                "this address, or from this address; Retry-After gives the seconds to wait",
            ),
            503: OpenApiResponse(
                _ERROR_BODY,
                description="SERVICE_UNAVAILABLE: `The database is unavailable; retry later` "
                "or `The cache is unavailable; retry later`; Retry-After gives the seconds "
                "to wait",
            ),
        },
        parameters=[
            OpenApiParameter(
                name,
                int,
                OpenApiParameter.HEADER,
                response=[429, 503] if name == "Retry-After" else [429],
                description="Whole seconds until a retry may succeed",
            )
            for name in ("Retry-After", "X-Rate-Limit-Retry-After-Seconds")
        ],
        examples=[
            OpenApiExample(
                "credentials",
                value={
                    "username": "ops@acme.test",
                    "apiKey": "<40 hex>",
                    "cdpGKey": "<32 hex>",
                },
                request_only=True,
            )
        ],
        tags=["Authentication API"],
    )
    def post(self, request: Request) -> Response:
        # Read here rather than by DRF's parser (request.data): its JSON is the standard
        # library's, which lets lone surrogates through and recurses into deep nesting,
        # and it reads `request.body`, whose over-size refusal is Django's HTML page.
        body = _body_parse(request._request)
        username, api_key, group_key = (
            _text(body, "username"),
            _text(body, "apiKey"),
            _text(body, "cdpGKey"),
        )
        if not username or not api_key:
            raise MissingInfo("Username and ApiKey are required")
        if not group_key:
            raise MissingInfo("Organization Context is not set")

        # Counted first, as if the attempt failed, then decided on the counts: concurrent
        # attempts cannot all be judged under the limit. Only the per-address window
        # refuses right credentials (so nobody can lock a user out from elsewhere); the
        # per-(username, address) one refuses wrong ones past it. A success is taken back.
        windows = windows_from_setting(settings.CDP_AUTHEN_RATE_LIMITS)
        now = window_now()
        per_user, per_address = _failure_counters(username, request, windows, now)
        store = shared_store()
        _values, counts = store.exchange(counters=[*per_user, *per_address])
        user_counts, address_counts = counts[: len(per_user)], counts[len(per_user) :]
        counters = [*per_user, *per_address]

        def refusal_of(window_counts: Sequence[int]) -> None:
            """429 for the first full window; the attempt is then no longer counted."""
            refusal = rate_limit_refusal(
                counts=window_counts,
                counters=counters,
                windows=windows,
                now=now,
                scope_label="of failed attempts",
            )
            if refusal is not None:
                raise refusal

        refusal_of(address_counts)
        # No stored username, key or group key holds U+0000, which PostgreSQL cannot even
        # compare: a credential with one is a wrong combination, answered (and counted)
        # like any other, without a query.
        key = (
            None
            if "\x00" in username or "\x00" in api_key or "\x00" in group_key
            else services.api_key_authenticate(
                group_key=group_key, username=username, raw_key=api_key
            )
        )
        if key is None:
            refusal_of(user_counts)
            raise Unauthorized("Invalid credentials")
        store.decrement([c.key for c in counters])  # a success is no failed attempt

        token, raw_token = services.token_issue(api_key=key)
        return Response(
            {
                "success": True,
                "status": "authenticated",
                "token": raw_token,
                "issuedAt": _epoch_ms(token.issued_at),
                "expiredAt": _epoch_ms(token.expires_at),
                "expiredAfter": settings.CDP_TOKEN_TTL_SECONDS,
            }
        )
