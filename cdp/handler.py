"""The WSGI handler: Django's, with a short middleware chain for the JSON APIs.

The Console needs sessions, authentication, messages, CSRF and frame protection. The
Authentication, Data Ingestion and Read APIs use none of them (they authenticate by
header, set no cookie and answer JSON), and the whole chain costs about 80 µs of CPU per
request, a tenth of a small ingest request (docs/performance.md). Requests under the API
prefixes therefore run through `API_MIDDLEWARE` (settings), every other request through
`MIDDLEWARE`, exactly as Django runs it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponseBase
from django.urls import set_urlconf
from django.utils.log import log_response
from django.utils.module_loading import import_string

from cdp.errors import API_PREFIXES


class CdpWSGIHandler(WSGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async)
        # BaseHandler._get_response, which Django's own chain ends with (the stubs omit it).
        handler: Any = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]
        for path in reversed(settings.API_MIDDLEWARE):
            handler = convert_exception_to_response(import_string(path)(handler))
        self._api_middleware_chain = handler

    def get_response(self, request: HttpRequest) -> HttpResponseBase:
        if not request.path.startswith(API_PREFIXES):
            return super().get_response(request)
        # What BaseHandler.get_response does, with the API's chain.
        set_urlconf(settings.ROOT_URLCONF)
        response = self._api_middleware_chain(request)
        # What CommonMiddleware does for the Console: a length, so that no answer is chunked.
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response(
                "%s: %s",
                response.reason_phrase,
                request.path,
                response=response,
                request=request,
            )
        return response
