"""Reading and parsing a JSON API request's body, the same way on every endpoint: the
stream to read (chunked bodies included), the Content-Type check and the strict JSON
parse, each refusal an ApiError of the wire contract."""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpRequest

from cdp.errors import InvalidJson, PayloadTooLarge


def body_stream(request: HttpRequest) -> Any:
    """What to read the request's body from. Django reads at most CONTENT_LENGTH bytes of
    `wsgi.input`, and none without it; but a `Transfer-Encoding: chunked` request has no
    length, and the server (gunicorn) hands over its de-chunked body, read to its end,
    saying so with `wsgi.input_terminated` (WSGI's flag for an input that ends at the end
    of the body): that one is read from `wsgi.input` itself. Without the flag (a server
    that leaves the chunks on the socket) there is nothing safe to read."""
    meta = request.META
    if not meta.get("CONTENT_LENGTH") and meta.get("wsgi.input_terminated"):
        return meta["wsgi.input"]
    return request


def payload_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Body is larger than the limit of {limit} bytes")


def body_read(request: HttpRequest, limit: int | None) -> bytes:
    """The raw body, at most `limit` bytes (None: no limit), or 413 in the API's body:
    refused on its declared length before anything is read, else after reading one byte
    past the limit, so that neither a lying length nor a chunked body gets past it.
    Never `request.body`, whose refusal is Django's HTML page."""
    stream = body_stream(request)
    if limit is None:
        return stream.read()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise payload_too_large(limit)
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise payload_too_large(limit)
    return body


def is_json_content_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def json_parse(body: bytes, content_type: str) -> Any:
    """The body's JSON, parsed with orjson: strict UTF-8, no NaN or Infinity, no lone
    surrogates, nesting at most 1024 deep; refusals are 400 INVALID_JSON saying which."""
    if not is_json_content_type(content_type):
        raise InvalidJson("Content-Type must be application/json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidJson("Body is not valid UTF-8") from None
        raise InvalidJson(f"Body is not valid JSON: {error}") from None
