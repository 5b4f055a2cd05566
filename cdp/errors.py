"""Every failure the APIs answer with, as data: status, errorCode and message.

Views raise `ApiError`; `api_exception_handler` (DRF's hook) and `error_response` turn it
into the one error body shape: `{"success": false, "errorCode", "message", "requestId"}`.

An exception that escapes an API view is answered by `api_exception_response` (the
request-id middleware's `process_exception`): 503 SERVICE_UNAVAILABLE when the database
or the cache cannot be reached, and under DEBUG the JSON 500 as well, which Django's debug
page would otherwise replace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import orjson
import redis
from django.conf import settings
from django.core import signals
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.db.utils import ConnectionHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.log import log_response
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from cdp.shared_store import StoreUnavailable

# Seconds a client is told to wait (Retry-After) before retrying after a 503.
RETRY_AFTER_SECONDS = 5


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


class RequestTimeout(ApiError):
    """The body did not arrive in time: answered by the production server's guard
    (cdp/asgi.py), before any view."""

    status = 408
    error_code = "REQUEST_TIMEOUT"


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


class ServiceUnavailable(ApiError):
    """A dependency cannot be reached. The message names it (`database`, `cache`), never
    the exception, whose text may hold hosts, users or a DSN; that goes to the log."""

    status = 503
    error_code = "SERVICE_UNAVAILABLE"

    def __init__(self, dependency: str, *, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(
            f"The {dependency} is unavailable; retry later",
            headers={"Retry-After": str(retry_after)},
        )
        self.dependency = dependency
        self.retry_after = retry_after


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
        # DRF sets `wait` in Throttled.__init__; its stubs do not declare the attribute.
        return RateLimited("Too many requests", retry_after=int(exc.wait or 1))  # type: ignore[attr-defined]
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


# What the database raises while connecting or on a broken connection (Django's wrappers
# of the driver's errors). Not every DatabaseError: IntegrityError, DataError and
# ProgrammingError are a bug's or a request's, and stay 500.
DATABASE_UNREACHABLE = (OperationalError, InterfaceError)
# The shared store's, and redis-py's own for anything reaching Redis through Django's
# cache API (its Redis backend raises them as they are).
CACHE_UNREACHABLE = (StoreUnavailable, redis.ConnectionError, redis.TimeoutError)


def outage_of(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 an exception means, when it says the database or the cache is down."""
    if isinstance(exc, DATABASE_UNREACHABLE):
        return ServiceUnavailable("database")
    if isinstance(exc, CACHE_UNREACHABLE):
        return ServiceUnavailable("cache")
    return None


def close_broken_connections(handler: ConnectionHandler = connections) -> None:
    """Drop this thread's database connections that failed and no longer work, so the
    next request opens new ones. Django does the same when a request finishes (the
    request_finished signal of its WSGI and ASGI handlers); doing it here does not depend
    on the server, nor on the test client, which turns that signal off. A connection
    inside an atomic block is left to the block (a test's transaction, above all)."""
    for connection in handler.all(initialized_only=True):
        if connection.errors_occurred and not connection.in_atomic_block:
            with contextlib.suppress(DatabaseError):
                connection.close_if_unusable_or_obsolete()


def _names(exc: BaseException) -> str:
    """`OperationalError from psycopg.OperationalError`: the class, and its cause's (the
    driver's error, which Django's and the store's wrap)."""
    cause = exc.__cause__
    if cause is None:
        return type(exc).__name__
    return f"{type(exc).__name__} from {type(cause).__module__}.{type(cause).__qualname__}"


def api_exception_response(request: HttpRequest, exc: Exception) -> HttpResponse | None:
    """The answer to an exception an API view let escape; None leaves it to Django (and
    so to `server_error`). Logged as Django logs an uncaught exception: `django.request`,
    with the traceback; the answer carries none of it."""
    if not _is_api(request):
        return None
    outage = outage_of(exc)
    if outage is not None:
        if outage.dependency == "database":
            close_broken_connections()
        response = error_http_response(outage, request)
        log_response(
            "%s: %s (the %s: %s)",
            response.reason_phrase,
            request.path,
            outage.dependency,
            _names(exc),
            response=response,
            request=request,
            exception=exc,
        )
        return response
    if settings.DEBUG and not settings.DEBUG_PROPAGATE_EXCEPTIONS:
        # Django's debug page would answer; answer what it does without DEBUG instead.
        signals.got_request_exception.send(sender=None, request=request)
        response = server_error(request)
        log_response(
            "%s: %s",
            response.reason_phrase,
            request.path,
            response=response,
            request=request,
            exception=exc,
        )
        return response
    return None
