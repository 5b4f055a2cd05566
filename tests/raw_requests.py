"""Requests no test client sends by itself, and the checks of their JSON error bodies:
shared by the bad-input tests of the Authentication and the Data Ingestion APIs."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from django.test import Client, RequestFactory

from tests.contract import ERROR_KEYS

REQUEST_ID_RE = re.compile(r"\A[0-9a-f]{32}\Z")


class Answer:
    """A response read back from the handler directly (not through Client.request)."""

    def __init__(self, response) -> None:
        self.response = response
        self.status_code = response.status_code

    def json(self) -> Any:
        return json.loads(self.response.content)

    def __getitem__(self, header: str) -> str:
        return self.response[header]


def chunked_post(
    path: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    terminated: bool = True,
    **headers: str,
) -> Answer:
    """`body` as gunicorn hands a `Transfer-Encoding: chunked` request to the application:
    no CONTENT_LENGTH, `wsgi.input` the de-chunked body (read up to its end) and
    `wsgi.input_terminated` set unless `terminated` is False (the WSGI environ built by
    hand, then run through the test client's handler)."""
    environ = RequestFactory().generic("POST", path, headers=headers).environ
    assert "CONTENT_LENGTH" not in environ
    environ.update(
        {
            "CONTENT_TYPE": content_type,
            "HTTP_TRANSFER_ENCODING": "chunked",
            "wsgi.input": io.BytesIO(body),
        }
    )
    if terminated:
        environ["wsgi.input_terminated"] = True
    return Answer(Client(raise_request_exception=False).handler(environ))


def error_of(response, status: int, error_code: str) -> dict[str, Any]:
    """The response's JSON error body, checked whole: status, shape, code, request id."""
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == ERROR_KEYS, body
    assert (body["success"], body["errorCode"]) == (False, error_code), body
    assert REQUEST_ID_RE.match(response["X-Request-Id"])
    assert body["requestId"] == response["X-Request-Id"]
    return body
