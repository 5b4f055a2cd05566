import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from cdp.errors import api_exception_response


class RequestIdMiddleware:
    """Gives every request a 32-hex id, echoed as `X-Request-Id` on every response.

    Error bodies read the same id from `request.request_id`, so the header and the
    body's `requestId` always agree. A response that sets the header itself keeps it: a
    replayed ingest answer carries the original request's id, as its body does.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = uuid.uuid4().hex
        response = self.get_response(request)
        response.setdefault("X-Request-Id", request.request_id)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return api_exception_response(request, exception)
