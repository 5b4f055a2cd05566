"""POST /dhub-i/api/v1.0/ingest with input no client should send, and bodies sent the way
some clients do (`Transfer-Encoding: chunked`): each bad body gets the API's JSON error
(4xx), each bad value a rejected entry (status 101), never a 500 or Django's HTML page, and
the same answer on SQLite and PostgreSQL.

The chunked requests go through the test client with the WSGI environ gunicorn builds,
and through the production server (the repository's gunicorn.conf.py) on 127.0.0.1, over
a raw socket."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client, RequestFactory

from cdp.models import EntityRecord
from ingestion.models import IngestionRequest
from tests.raw_requests import Answer, chunked_post, error_of
from tests.served import Server, served

URL = "/dhub-i/api/v1.0/ingest"
AUTHEN_URL = "/api/accounts/authen"
MIB = 1024 * 1024


def auth(tenant, token: str) -> dict[str, str]:
    return {"TOKEN": token, "API_KEY": tenant.raw_key}


def member(tenant, ref_id: str, **fields: Any) -> dict[str, Any]:
    return {"momCode": tenant.mom_code, "refId": ref_id, **fields}


def body_of(entries: list[Any], object_type: str = "custom-model") -> dict[str, Any]:
    return {"objectType": object_type, "source": "CRM", "entries": entries}


def _padded(tenant, size: int) -> bytes:
    """A valid one-entry body, padded with spaces to exactly `size` bytes."""
    raw = json.dumps(body_of([member(tenant, "PAD-1")])).encode()
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def post(tenant, token: str, body: bytes | str, **extra: Any):
    client = Client(raise_request_exception=False)
    return client.post(
        URL, data=body, content_type="application/json", headers=auth(tenant, token), **extra
    )


# --- 1. bodies over Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) ------------------------


def test_a_3_mb_body_is_the_ingest_413_in_json(tenant_a, token_a):
    response = post(tenant_a, token_a, _padded(tenant_a, 3_000_000))

    body = error_of(response, 413, "PAYLOAD_TOO_LARGE")
    assert str(MIB) in body["message"]
    assert not EntityRecord.objects.exists()
    assert IngestionRequest.objects.get().error_code == "PAYLOAD_TOO_LARGE"


def test_a_3_mb_chunked_body_is_the_ingest_413_in_json(tenant_a, token_a):
    response = chunked_post(URL, _padded(tenant_a, 3_000_000), **auth(tenant_a, token_a))

    body = error_of(response, 413, "PAYLOAD_TOO_LARGE")
    assert str(MIB) in body["message"]
    assert not EntityRecord.objects.exists()


def test_the_ingest_limit_holds_above_django_s(tenant_a, token_a, settings):
    # A larger ingest limit than Django's: the ingest endpoint reads its own body.
    settings.CDP_INGEST_MAX_BODY_BYTES = 4 * MIB

    response = post(tenant_a, token_a, _padded(tenant_a, 3_000_000))

    assert response.status_code == 200, response.json()
    assert EntityRecord.objects.filter(key="PAD-1").exists()


# --- 3. Transfer-Encoding: chunked -------------------------------------------------------


def test_a_chunked_body_is_read(tenant_a, token_a):
    body = json.dumps(body_of([member(tenant_a, "CH-1", customField01="gold")])).encode()

    response = chunked_post(URL, body, **auth(tenant_a, token_a))

    assert response.status_code == 200, response.json()
    assert response.json()["created"] == 1
    assert EntityRecord.objects.get(key="CH-1").data["customField01"] == "gold"


def test_a_chunked_body_at_the_limit_is_read_and_one_byte_more_is_413(tenant_a, token_a, settings):
    settings.CDP_INGEST_MAX_BODY_BYTES = 300

    at_limit = chunked_post(URL, _padded(tenant_a, 300), **auth(tenant_a, token_a))
    over = chunked_post(URL, _padded(tenant_a, 301), **auth(tenant_a, token_a))

    assert at_limit.status_code == 200, at_limit.json()
    assert "300" in error_of(over, 413, "PAYLOAD_TOO_LARGE")["message"]


def test_a_chunked_body_is_read_to_at_most_one_byte_past_the_limit(tenant_a, token_a, settings):
    settings.CDP_INGEST_MAX_BODY_BYTES = 300
    stream = io.BytesIO(_padded(tenant_a, 100_000))
    environ = RequestFactory().generic("POST", URL, headers=auth(tenant_a, token_a)).environ
    environ.update(
        {
            "CONTENT_TYPE": "application/json",
            "HTTP_TRANSFER_ENCODING": "chunked",
            "wsgi.input": stream,
            "wsgi.input_terminated": True,
        }
    )

    error_of(Answer(Client().handler(environ)), 413, "PAYLOAD_TOO_LARGE")
    assert stream.tell() == 301


def test_an_empty_chunked_body_is_invalid_json(tenant_a, token_a):
    error_of(chunked_post(URL, b"", **auth(tenant_a, token_a)), 400, "INVALID_JSON")


# --- 2. numbers no database column or JSON reader holds --------------------------------


def _ingest(api, entries: list[Any], object_type: str = "custom-model"):
    """The answer's body, after checking its status: 200 when an entry was stored, 400
    (INVALID_ENTRIES) when every one was rejected."""
    response = api.post(entries, object_type=object_type)
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert response.status_code == (200 if body["created"] + body["updated"] else 400), body
    return body


def _rejected(body: dict[str, Any]) -> dict[int, str]:
    return {r["index"]: r["errorMessage"] for r in body["results"] if r["status"] == 101}


DIGITS_25 = "1" * 25
DIGITS_400 = "1" * 400
RANGE = "must be a number from -9223372036854775808 to 9223372036854775807"
DOUBLE = ("customFieldDoubles", "customFieldDouble01")
LONG = ("customFieldLongs", "customFieldLong01")
TIMESTAMP = ("customFieldTimestamps", "customFieldTimestamp01")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (DOUBLE, DIGITS_25, RANGE),
        (DOUBLE, "-" + DIGITS_25, RANGE),
        (DOUBLE, int(DIGITS_25), RANGE),  # a JSON number: orjson reads it as a double
        (DOUBLE, 1e20, RANGE),
        (DOUBLE, "1e20", RANGE),
        (DOUBLE, -1e20, RANGE),
        (DOUBLE, 2**63, RANGE),
        (DOUBLE, str(2**63), RANGE),
        (DOUBLE, 2**64 - 1, RANGE),
        (DOUBLE, str(-(2**63) - 1), RANGE),
        (DOUBLE, DIGITS_400, RANGE),
        (DOUBLE, "9" * 5000, RANGE),  # past Python's 4,300-digit limit of int(str)
        (DOUBLE, "1e400", "must be a finite number"),
        (DOUBLE, DIGITS_400 + ".5", "must be a finite number"),
        (LONG, DIGITS_25, "must be an integer"),
        (LONG, "-" + DIGITS_25, "must be an integer"),
        (LONG, int(DIGITS_25), "must be an integer"),
        (LONG, DIGITS_400, "must be an integer"),
        (LONG, "9" * 5000, "must be an integer"),
        (LONG, 2**63, "must be an integer"),
        (LONG, str(2**63), "must be an integer"),
        (TIMESTAMP, DIGITS_25, "must be a date between the years 1 and 9999"),
        (TIMESTAMP, DIGITS_400, "must be a date between the years 1 and 9999"),
        (TIMESTAMP, "1e400", "must be a timestamp"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_a_number_out_of_range_rejects_its_entry_only(api_a, field, value, message):
    group, name = field
    good = member(api_a.tenant, "OK-1", customFieldLong01=7)
    bad = member(api_a.tenant, "BAD-1", **{group: {name: value}})

    body = _ingest(api_a, [good, bad])

    assert (body["created"], body["failed"]) == (1, 1), body
    assert _rejected(body) == {1: f"Invalid value of {group}.{name}: {message}"}
    assert set(api_a.records().values_list("key", flat=True)) == {"OK-1"}


def test_every_entry_with_an_unstorable_number_is_rejected(api_a):
    entries = [
        member(api_a.tenant, "A-1", customFieldDouble01=DIGITS_25),
        member(api_a.tenant, "A-2", customFieldDouble01=DIGITS_400),
        member(api_a.tenant, "A-3", customFieldLong01=DIGITS_400),
    ]

    response = api_a.post(entries)

    body = response.json()
    assert (response.status_code, body["errorCode"]) == (400, "INVALID_ENTRIES"), body
    assert [r["status"] for r in body["results"]] == [101, 101, 101]
    assert not api_a.records().exists()


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (2**63 - 1, 2**63 - 1),
        (str(2**63 - 1), 2**63 - 1),
        (-(2**63), -(2**63)),
        (str(-(2**63)), -(2**63)),
        (9.2e18, 9.2e18),
        ("-9.2e18", -9.2e18),
        (1.5e-300, 1.5e-300),
        ("123456789012345678.5", 123456789012345678.5),
    ],
)
def test_a_double_keeps_every_number_of_the_range_and_reads_it_back(api_a, value, stored):
    entry = member(api_a.tenant, "D-1", customFieldDoubles={"customFieldDouble01": value})

    body = _ingest(api_a, [entry])

    assert body["created"] == 1, body
    assert api_a.data("D-1")["customFieldDouble01"] == stored
    # And the Read API renders it (on PostgreSQL a large double comes back from jsonb as
    # an integer: within 64 bits, one orjson writes).
    read = api_a.client.get(
        f"/dhub-i/api/v1.0/records/custom-model/D-1?momCode={api_a.tenant.mom_code}",
        headers=auth(api_a.tenant, api_a.token),
    )
    assert read.status_code == 200, read.content
    assert read.json()["record"]["data"]["customFieldDouble01"] == stored


def test_a_400_digit_item_price_rejects_the_order(api_a):
    order = {
        "orderId": "O-1",
        "orderStatus": "new",
        "customerId": "C-1",
        "customerName": "Ann",
        "customerEmail": "ann@example.test",
        "items": [{"productSku": "SKU-1", "productName": "Tea", "price": DIGITS_400}],
    }

    body = _ingest(api_a, [order], object_type="order")

    assert _rejected(body) == {0: f"Invalid value of items[0].price: {RANGE}"}


def test_a_400_digit_text_is_text(api_a):
    entry = member(api_a.tenant, "X-1", customFieldTexts={"customField01": DIGITS_400})

    body = _ingest(api_a, [entry])

    assert body["created"] == 1, body
    assert api_a.data("X-1")["customField01"] == DIGITS_400


def test_a_json_number_beyond_a_double_refuses_the_body(api_a):
    # orjson reads an integer past 2^64 as a double; past a double's range there is no
    # value at all, so the body is not JSON this API can read (400 for the whole request).
    raw = json.dumps(body_of([member(api_a.tenant, "J-1")])).replace(
        '"refId": "J-1"', f'"refId": "J-1", "customFieldDouble01": {DIGITS_400}'
    )

    response = api_a.client.post(
        URL, data=raw, content_type="application/json", headers=auth(api_a.tenant, api_a.token)
    )

    assert error_of(response, 400, "INVALID_JSON")["message"].startswith("Body is not valid JSON")


# --- a real gunicorn, raw-socket chunked requests ---------------------------------------


@pytest.fixture(scope="module")
def gunicorn_server(django_db_setup) -> Iterator[Server]:
    """The production server, one worker of two threads, on the test database."""
    with served(WEB_CONCURRENCY="1", WEB_THREADS="2", CONN_MAX_AGE="0") as server:
        yield server


@dataclass
class RawAnswer:
    status_code: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def __getitem__(self, header: str) -> str:
        return self.headers[header.lower()]


def raw_chunked_post(
    server: Server, path: str, body: bytes, headers: dict[str, str], chunk: int = 4096
) -> RawAnswer:
    """POST `body` over a plain socket, `Transfer-Encoding: chunked`, in chunks of
    `chunk` bytes; the answer read with http.client's parser. The body is sent from a
    thread, so that an answer given before the whole body is read is still read."""
    sock = socket.create_connection((server.host, server.port), timeout=30)
    head = [f"POST {path} HTTP/1.1", f"Host: {server.host}:{server.port}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head += ["Content-Type: application/json", "Transfer-Encoding: chunked", "", ""]
    sock.sendall("\r\n".join(head).encode())

    def send_body() -> None:
        try:
            for start in range(0, len(body), chunk):
                part = body[start : start + chunk]
                sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed before the end of the body

    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        content = response.read()
        headers_read = {k.lower(): v for k, v in response.getheaders()}
        return RawAnswer(response.status, headers_read, content)
    finally:
        sender.join(timeout=30)
        sock.close()


@pytest.mark.django_db(transaction=True)
def test_gunicorn_reads_chunked_authen_and_ingest_bodies(gunicorn_server, tenant_a):
    credentials = {
        "username": tenant_a.username,
        "apiKey": tenant_a.raw_key,
        "cdpGKey": tenant_a.group_key,
    }
    authen = raw_chunked_post(gunicorn_server, AUTHEN_URL, json.dumps(credentials).encode(), {})
    assert authen.status_code == 200, authen.body
    token = authen.json()["token"]

    entries = [member(tenant_a, f"GC-{i}", customField01="x" * 200) for i in range(40)]
    body = json.dumps(body_of(entries)).encode()
    assert len(body) > 4096 * 2  # several chunks
    ingest = raw_chunked_post(
        gunicorn_server, URL, body, {"TOKEN": token, "API_KEY": tenant_a.raw_key}, chunk=1000
    )

    assert ingest.status_code == 200, ingest.body
    assert (ingest.json()["success"], ingest.json()["created"]) == (True, 40)
    assert EntityRecord.objects.filter(organization=tenant_a.organization).count() == 40


@pytest.mark.django_db(transaction=True)
def test_gunicorn_answers_json_413_to_large_chunked_bodies(gunicorn_server, tenant_a):
    credentials = {
        "username": tenant_a.username,
        "apiKey": tenant_a.raw_key,
        "cdpGKey": tenant_a.group_key,
    }
    raw = json.dumps(credentials).encode()
    big_authen = raw[:-1] + b" " * 3_000_000 + b"}"
    authen = raw_chunked_post(gunicorn_server, AUTHEN_URL, big_authen, {}, chunk=65536)
    assert error_of(authen, 413, "PAYLOAD_TOO_LARGE")

    token = raw_chunked_post(gunicorn_server, AUTHEN_URL, raw, {}).json()["token"]
    ingest = raw_chunked_post(
        gunicorn_server,
        URL,
        _padded(tenant_a, 3_000_000),
        {"TOKEN": token, "API_KEY": tenant_a.raw_key},
        chunk=65536,
    )

    assert str(MIB) in error_of(ingest, 413, "PAYLOAD_TOO_LARGE")["message"]
    assert not EntityRecord.objects.filter(organization=tenant_a.organization).exists()
