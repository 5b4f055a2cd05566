"""The application as the production server runs it: the WSGI application (cdp/wsgi.py)
on a pool of threads, behind a guard that reads each request's body on the event loop.

gunicorn (gunicorn.conf.py) runs uvicorn workers: one event loop per process holds every
connection, and a request reaches a thread of the pool only once it has arrived whole, so
a client that trickles its body holds a socket, never a thread. The JSON APIs' requests
cross to the thread and back once each (`ApiBridge`); the Console's go through a2wsgi,
which streams answers. The threads are the ones gthread workers had: each keeps its
database connection between requests. `RequestGuard` is the part that reads and bounds:

- the body is read in full within `CDP_REQUEST_BODY_TIMEOUT` seconds of the headers; a
  client that trickles it, or declares a Content-Length it never sends, gets a JSON 408
  `REQUEST_TIMEOUT` and the connection is closed;
- no body over `CDP_REQUEST_MAX_BODY_BYTES` is held in memory: a JSON 413
  `PAYLOAD_TOO_LARGE` (the ingest and authen endpoints keep their own, smaller limits,
  which they answer themselves); a chunked body, once whole, is handed over with its
  length;
- header names with an underscore are dropped, except `API_KEY`, the Data Ingestion
  API's own spelling. WSGI maps `X_Forwarded_For` and `X-Forwarded-For` onto one key, so
  a client could otherwise pose as the proxy that vouches for the second; the two
  spellings of `API_KEY` name the same credential, so nothing can be spoofed with it.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

# The settings of make serve and of the systemd unit, unless the environment names others.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

import orjson
from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import build_environ
from django.conf import settings

from cdp.errors import API_PREFIXES, ApiError, PayloadTooLarge, RequestTimeout, error_body
from cdp.wsgi import application as wsgi_application

if TYPE_CHECKING:
    from a2wsgi.wsgi_typing import WSGIApp

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestGuard:
    def __init__(self, app: App, *, body_timeout: float, max_body_bytes: int) -> None:
        self.app = app
        self.body_timeout = body_timeout
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = {**scope, "headers": _trusted_headers(scope["headers"])}
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await self._read_body(receive)
        except TimeoutError:
            seconds = f"{self.body_timeout:g}"
            await _refuse(
                send, RequestTimeout(f"The request body did not arrive within {seconds} seconds")
            )
            return
        except _TooLarge:
            await _refuse(
                send, PayloadTooLarge(f"Request body exceeds {self.max_body_bytes} bytes")
            )
            return
        if body is None:  # the client went away before its body arrived
            return
        if body and not any(name == b"content-length" for name, _ in scope["headers"]):
            # A chunked body, now whole: the application reads it by its length.
            scope["headers"] = [*scope["headers"], (b"content-length", b"%d" % len(body))]
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _TooLarge(Exception):
    pass


def _trusted_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Every header whose name has no underscore, and `API_KEY`."""
    if not any(b"_" in name for name, _ in headers):
        return headers
    return [(name, value) for name, value in headers if b"_" not in name or name == b"api_key"]


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body as one message, then the server's own messages (Django listens for the
    client's disconnect while the view runs)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


async def _refuse(send: Send, error: ApiError) -> None:
    """What the guard answers itself, in the APIs' error shape; the connection closes."""
    request_id = uuid.uuid4().hex
    body = orjson.dumps(error_body(error, request_id))
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                (b"x-request-id", request_id.encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ApiBridge:
    """The JSON APIs' requests on the pool's threads, answered whole; every other request
    through a2wsgi (`fallback`), which streams its answer.

    a2wsgi hands each part of an exchange across threads and waits for it: the body's
    reads, the answer's start, each of its parts and its end, each a wake-up of the event
    loop and one of the thread. An API's body has arrived whole (the guard) and its answer
    is one JSON document, so here the thread gets the body in memory and gives back the
    answer whole: one hand-over each way (docs/decisions.md, "The APIs' bridge").
    The same threads as a2wsgi's (its executor), so each keeps its database connection.
    No API answer streams; one that did (an export) would be held whole in memory here,
    so it would have to go to `fallback`.
    """

    def __init__(self, wsgi_app: Any, fallback: WSGIMiddleware) -> None:
        self.wsgi_app = wsgi_app
        self.fallback = fallback
        self.executor = fallback.executor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIXES):
            await self.fallback(cast(Any, scope), cast(Any, receive), cast(Any, send))
            return
        chunks: list[bytes] = []
        while True:  # one message behind the guard
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = io.BytesIO(b"".join(chunks))
        environ = cast("dict[str, Any]", build_environ(cast(Any, scope), cast(Any, body)))
        context = contextvars.copy_context()
        status, headers, content = await asyncio.get_running_loop().run_in_executor(
            self.executor, context.run, self._answer, environ
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _answer(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Run the WSGI application in this thread: its status, headers and body."""
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [
                int(status.split(" ", 1)[0]),
                [
                    (n.strip().encode("latin1").lower(), v.strip().encode("latin1"))
                    for n, v in headers
                ],
            ]
            return chunks.append

        iterable = self.wsgi_app(environ, start_response)
        try:
            chunks.extend(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()  # Django's request_finished: the connection's age, in this thread
        return started[0], started[1], b"".join(chunks)


# WEB_THREADS: threads per worker process (gunicorn.conf.py), each with its own database
# connection.
# Casts of types only: Django's stubs type the handler's answer as HttpResponseBase, which
# at run time is always a response WSGI can iterate over (bytes); a2wsgi types scopes,
# messages and environs as TypedDicts, which are the plain dicts the guard and
# `ApiBridge` pass on.
application = RequestGuard(
    ApiBridge(
        wsgi_application,
        WSGIMiddleware(
            cast("WSGIApp", wsgi_application), workers=int(os.environ.get("WEB_THREADS", 8))
        ),
    ),
    body_timeout=settings.CDP_REQUEST_BODY_TIMEOUT,
    max_body_bytes=settings.CDP_REQUEST_MAX_BODY_BYTES,
)
