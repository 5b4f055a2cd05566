import uuid
from collections.abc import Callable
from typing import cast

from django.http import HttpRequest, HttpResponse

from cdp.errors import api_exception_response


class IdentifiedRequest(HttpRequest):
    """For annotations only: a request this middleware has given its id (HttpRequest does
    not declare it). Never instantiated: the id is set on Django's own request."""

    request_id: str


class RequestIdMiddleware:
    """Gives every request a 32-hex id, echoed as `X-Request-Id` on every response.

    Error bodies read the same id from `request.request_id`, so the header and the
    body's `requestId` always agree. A response that sets the header itself keeps it: a
    replayed ingest answer carries the original request's id, as its body does.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        identified = cast(IdentifiedRequest, request)
        identified.request_id = uuid.uuid4().hex
        response = self.get_response(request)
        response.setdefault("X-Request-Id", identified.request_id)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return api_exception_response(request, exception)
