"""Every failure the APIs answer with, as data: status, errorCode and message.

Views raise `ApiError`; `api_exception_handler` (DRF's hook) and `error_response` turn it
into the one error body shape: `{"success": false, "errorCode", "message", "requestId"}`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApiError(Exception):
    status: int = 400
    error_code: str = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}


class MissingInfo(ApiError):
    status = 400
    error_code = "MISSING_INFO"


class InvalidValue(MissingInfo):
    """`Invalid value of: a, b`: every bad field, in body order."""

    def __init__(self, fields: Iterable[str]) -> None:
        self.fields = list(fields)
        super().__init__(f"Invalid value of: {', '.join(self.fields)}")


class Unauthorized(ApiError):
    status = 401
    error_code = "UNAUTHORIZED"


class RateLimited(ApiError):
    status = 429
    error_code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int) -> None:
        seconds = str(max(1, int(retry_after)))
        super().__init__(
            message,
            headers={"X-Rate-Limit-Retry-After-Seconds": seconds, "Retry-After": seconds},
        )
        self.retry_after = int(seconds)


class PayloadTooLarge(ApiError):
    status = 413
    error_code = "PAYLOAD_TOO_LARGE"


class InvalidJson(ApiError):
    status = 400
    error_code = "INVALID_JSON"


class EntriesLimitExceeded(ApiError):
    status = 400
    error_code = "ENTRIES_LIMIT_EXCEEDED"


class InvalidObjectType(ApiError):
    status = 400
    error_code = "INVALID_OBJECT_TYPE"


class InvalidJourneyEvent(ApiError):
    status = 400
    error_code = "INVALID_JOURNEY_EVENT"


class JourneyEventDisabled(ApiError):
    status = 400
    error_code = "JOURNEY_EVENT_DISABLED"


class InvalidEntries(ApiError):
    status = 400
    error_code = "INVALID_ENTRIES"


class IdempotencyKeyReused(ApiError):
    status = 422
    error_code = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self) -> None:
        super().__init__("Idempotency-Key was already used with a different request")


class NotFound(ApiError):
    status = 404
    error_code = "NOT_FOUND"


class ServerError(ApiError):
    status = 500
    error_code = "INTERNAL_ERROR"


class MethodNotAllowed(ApiError):
    status = 405
    error_code = "METHOD_NOT_ALLOWED"


def request_id_of(request: HttpRequest | None) -> str:
    return getattr(request, "request_id", "") if request is not None else ""


def error_body(error: ApiError, request_id: str) -> dict[str, Any]:
    return {
        "success": False,
        "errorCode": error.error_code,
        "message": error.message,
        "requestId": request_id,
        **error.extra,
    }


def error_http_response(error: ApiError, request: HttpRequest | None) -> HttpResponse:
    """The error as a plain Django response, for views outside DRF (the ingest endpoint)."""
    return HttpResponse(
        orjson.dumps(error_body(error, request_id_of(request))),
        status=error.status,
        headers={"Content-Type": "application/json", **error.headers},
    )


def error_response(error: ApiError, request: HttpRequest | None) -> Response:
    return Response(
        error_body(error, request_id_of(request)), status=error.status, headers=error.headers
    )


def _translate(exc: Exception) -> ApiError | None:
    """Map DRF's own exceptions onto our error codes, so no body escapes in DRF's shape."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, exceptions.ParseError):
        return InvalidJson(f"Body is not valid JSON: {exc.detail}")
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return InvalidJson("Content-Type must be application/json")
    if isinstance(exc, exceptions.MethodNotAllowed):
        return MethodNotAllowed(str(exc.detail))
    if isinstance(exc, exceptions.Throttled):
        return RateLimited("Too many requests", retry_after=int(exc.wait or 1))
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return Unauthorized(str(exc.detail))
    if isinstance(exc, exceptions.NotFound):
        return NotFound(str(exc.detail))
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    error = _translate(exc)
    if error is None:
        return exception_handler(exc, context)
    return error_response(error, context.get("request"))


# Paths of the JSON APIs: their unknown URLs and server errors answer in the error body
# shape too, never with an HTML page (the Console keeps Django's pages).
API_PREFIXES = ("/api/", "/dhub-i/")


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


def _json_error(error: ApiError, request: HttpRequest, status: int) -> JsonResponse:
    return JsonResponse(error_body(error, request_id_of(request)), status=status)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: NOT_FOUND in the API's body for API paths."""
    if _is_api(request):
        return _json_error(NotFound(f"No such endpoint: {request.path}"), request, 404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a JSON body without any detail for API paths (the trace goes to the log
    only)."""
    if _is_api(request):
        return _json_error(ServerError("Internal error; quote the requestId"), request, 500)
    return defaults.server_error(request)
