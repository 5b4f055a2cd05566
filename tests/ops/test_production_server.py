"""The production server (gunicorn.conf.py, cdp/asgi.py) against clients that are slow,
stalled or lying about their bodies: none of them holds a thread, each gets a JSON answer
where the server gives one, and everyone else is served meanwhile.

The guard is tested first on its own (an ASGI app called with scripted messages), then
the server as `make serve` starts it, over raw sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import socket
import statistics
import threading
import time
from typing import Any

import pytest
from gunicorn.app.base import Application

from cdp.asgi import RequestGuard
from cdp.models import EntityRecord
from tests.served import Server, served

INGEST = "/dhub-i/api/v1.0/ingest"
AUTHEN = "/api/accounts/authen"


# --- the server's configuration --------------------------------------------------------------


class ShippedConfig(Application):
    """gunicorn's configuration as `make serve` loads it from gunicorn.conf.py."""

    def load_config(self) -> None:
        self.load_config_from_file("gunicorn.conf.py")

    def load(self) -> None:  # pragma: no cover - never run, the test starts no server
        raise AssertionError("not served")


def test_the_master_freezes_the_imported_heap_and_workers_collect_the_young_less_often():
    cfg = ShippedConfig().cfg
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        cfg.when_ready(None)  # the master, before the first fork
        frozen = gc.get_freeze_count()
        cfg.post_fork(None, None)  # each worker
        assert gc.get_threshold() == (10_000, 10, 10)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    # This process has Django and the apps imported, as the master has before it forks.
    assert frozen > 50_000
    assert gc.get_freeze_count() == 0


# --- the guard, on its own ------------------------------------------------------------------


class Recorder:
    """An inner app that records what reached it and answers 204."""

    def __init__(self) -> None:
        self.scope: dict[str, Any] | None = None
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, scope, receive, send) -> None:
        self.scope = scope
        self.messages.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def run_guard(
    messages: list[dict[str, Any] | float],
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    timeout: float = 0.5,
    max_body: int = 100,
) -> tuple[Recorder, list[dict[str, Any]]]:
    """The guard around a Recorder, fed `messages` in order (a number: a pause of that many
    seconds); returns the recorder and what the guard sent."""
    inner, sent = Recorder(), []
    script = list(messages)

    async def receive() -> dict[str, Any]:
        while script and isinstance(script[0], float):
            await asyncio.sleep(script.pop(0))
        if script:
            return script.pop(0)
        await asyncio.sleep(3600)  # the client sends nothing more
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": INGEST, "headers": headers or []}
    guard = RequestGuard(inner, body_timeout=timeout, max_body_bytes=max_body)
    asyncio.run(guard(scope, receive, send))
    return inner, sent


def body_part(data: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


def refusal(sent: list[dict[str, Any]]) -> tuple[int, dict[str, str], dict[str, Any]]:
    start, body = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, json.loads(body["body"])


def test_a_body_in_parts_reaches_the_application_whole_in_one_message():
    inner, sent = run_guard(
        [body_part(b'{"a":'), 0.01, body_part(b" 1"), body_part(b"}", more=False)],
        headers=[(b"content-length", b"8")],
    )

    assert inner.messages == [{"type": "http.request", "body": b'{"a": 1}', "more_body": False}]
    assert sent[0]["status"] == 204


def test_a_chunked_body_is_handed_over_with_its_length():
    inner, _ = run_guard([body_part(b"abc"), body_part(b"de", more=False)])

    assert inner.scope is not None
    assert (b"content-length", b"5") in inner.scope["headers"]
    assert inner.messages[0]["body"] == b"abcde"


def test_a_body_that_does_not_arrive_in_time_is_a_json_408_and_the_app_never_runs():
    inner, sent = run_guard([body_part(b"{"), 0.2, body_part(b'"a"'), 0.4], timeout=0.5)

    status, headers, body = refusal(sent)
    assert status == 408
    assert body["success"] is False
    assert body["errorCode"] == "REQUEST_TIMEOUT"
    assert body["message"] == "The request body did not arrive within 0.5 seconds"
    assert headers["x-request-id"] == body["requestId"] and len(body["requestId"]) == 32
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert inner.scope is None


def test_a_body_over_the_limit_is_a_json_413_and_is_not_read_further():
    inner, sent = run_guard([body_part(b"x" * 60), body_part(b"x" * 60), body_part(b"x")])

    status, _, body = refusal(sent)
    assert (status, body["errorCode"]) == (413, "PAYLOAD_TOO_LARGE")
    assert body["message"] == "Request body exceeds 100 bytes"
    assert inner.scope is None


def test_a_body_at_the_limit_is_served():
    inner, sent = run_guard([body_part(b"x" * 100, more=False)])

    assert inner.messages[0]["body"] == b"x" * 100
    assert sent[0]["status"] == 204


def test_a_client_gone_before_its_body_gets_nothing_and_the_app_never_runs():
    inner, sent = run_guard([body_part(b"{"), {"type": "http.disconnect"}])

    assert sent == [] and inner.scope is None


def test_underscore_headers_are_dropped_except_api_key():
    headers = [
        (b"api_key", b"the-key"),
        (b"x_forwarded_for", b"10.0.0.1"),
        (b"x-forwarded-for", b"203.0.113.9"),
        (b"token", b"t"),
    ]
    inner, _ = run_guard([body_part(b"", more=False)], headers=headers)

    assert inner.scope is not None
    assert inner.scope["headers"] == [
        (b"api_key", b"the-key"),
        (b"x-forwarded-for", b"203.0.113.9"),
        (b"token", b"t"),
    ]


def test_after_the_body_the_application_hears_the_server_s_own_messages():
    """Django's handler listens for the client's disconnect while a view runs."""
    heard: list[dict[str, Any]] = []

    async def inner(scope, receive, send) -> None:
        heard.append(await receive())
        heard.append(await receive())

    script = [body_part(b"{}", more=False), {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        return script.pop(0)

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("nothing to send")

    guard = RequestGuard(inner, body_timeout=1, max_body_bytes=10)
    asyncio.run(guard({"type": "http", "headers": []}, receive, send))

    assert [m["type"] for m in heard] == ["http.request", "http.disconnect"]


# --- the APIs' bridge, on its own ----------------------------------------------------------


class WsgiRecorder:
    """A WSGI app that records its environ, its body and the threads it ran and closed
    in, and answers 201 with two parts."""

    def __init__(self) -> None:
        self.environ: dict[str, Any] = {}
        self.body = b""
        self.threads: list[str] = []

    def __call__(self, environ, start_response):
        self.environ = environ
        self.body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        self.threads.append(threading.current_thread().name)
        start_response("201 Created", [("Content-Type", "application/json"), ("X-Two", "2")])
        recorder = self

        class Answer(list):
            def close(self) -> None:
                recorder.threads.append(threading.current_thread().name)

        return Answer([b'{"a":', b"1}"])


def run_bridge(path: str, messages: list[dict[str, Any]]):
    """An ApiBridge around a WsgiRecorder (a2wsgi, for other paths, around another):
    returns both recorders and what was sent."""
    from a2wsgi import WSGIMiddleware

    from cdp.asgi import ApiBridge

    api, other, sent = WsgiRecorder(), WsgiRecorder(), []
    script = list(messages)

    async def receive() -> dict[str, Any]:
        return script.pop(0) if script else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "root_path": "",
        "query_string": b"dry=1",
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("203.0.113.9", 5000),
        "headers": [
            (b"content-length", b"7"),
            (b"token", b"t"),
            (b"x-many", b"a"),
            (b"x-many", b"b"),
        ],
    }
    bridge = ApiBridge(api, WSGIMiddleware(other, workers=2))
    asyncio.run(bridge(scope, receive, send))
    return api, other, sent


def test_an_api_request_runs_in_a_pool_thread_and_is_answered_whole():
    api, other, sent = run_bridge(INGEST, [body_part(b'{"x":1}', more=False)])

    assert api.body == b'{"x":1}'
    assert api.environ["REQUEST_METHOD"] == "POST"
    assert api.environ["PATH_INFO"] == INGEST
    assert api.environ["QUERY_STRING"] == "dry=1"
    assert api.environ["REMOTE_ADDR"] == "203.0.113.9"
    assert api.environ["HTTP_TOKEN"] == "t"
    assert api.environ["HTTP_X_MANY"] == "a,b"
    # Run and closed in the same thread of the pool, never the event loop's.
    assert len(api.threads) == 2 and api.threads[0] == api.threads[1]
    assert api.threads[0] != threading.current_thread().name
    assert sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"application/json"), (b"x-two", b"2")],
        },
        {"type": "http.response.body", "body": b'{"a":1}'},
    ]
    assert other.threads == []


def test_a_body_in_several_messages_reaches_the_api_whole():
    api, _, _ = run_bridge(INGEST, [body_part(b'{"x":'), body_part(b"1}", more=False)])

    assert api.body == b'{"x":1}'


def test_a_client_gone_before_its_body_never_reaches_the_api():
    api, _, sent = run_bridge(INGEST, [{"type": "http.disconnect"}])

    assert api.threads == [] and sent == []


def test_the_console_s_requests_go_through_a2wsgi():
    api, other, sent = run_bridge("/console/", [body_part(b"", more=False)])

    assert api.threads == []
    assert other.environ["PATH_INFO"] == "/console/"
    assert sent[0]["status"] == 201
    # a2wsgi streams: the parts one by one, then the end.
    assert [m.get("body") for m in sent[1:]] == [b'{"a":', b"1}", b""]


# --- the server as `make serve` starts it ---------------------------------------------------


def authenticate(server: Server, tenant) -> str:
    credentials = {
        "username": tenant.username,
        "apiKey": tenant.raw_key,
        "cdpGKey": tenant.group_key,
    }
    status, body = post(server, AUTHEN, json.dumps(credentials).encode(), {})
    assert status == 200, body
    return body["token"]


def post(
    server: Server, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def raw_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def ingest_body(tenant, ref_id: str) -> bytes:
    entry = {"momCode": tenant.mom_code, "refId": ref_id, "customField01": "probe"}
    return json.dumps({"objectType": "custom-model", "source": "CRM", "entries": [entry]}).encode()


@pytest.mark.django_db(transaction=True)
def test_a_content_length_larger_than_the_body_is_a_json_408_not_a_held_worker(tenant_a):
    with served(CDP_REQUEST_BODY_TIMEOUT="1") as server:
        token = authenticate(server, tenant_a)
        body = ingest_body(tenant_a, "SHORT-1")
        sock = socket.create_connection((server.host, server.port), timeout=10)
        head = (
            f"POST {INGEST} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"TOKEN: {token}\r\nAPI_KEY: {tenant_a.raw_key}\r\n"
            f"Content-Length: {len(body) + 100}\r\n\r\n"
        )
        started = time.monotonic()
        sock.sendall(head.encode() + body)
        status, headers, content = raw_answer(sock)
        waited = time.monotonic() - started
        sock.close()

    answer = json.loads(content)
    assert (status, answer["errorCode"]) == (408, "REQUEST_TIMEOUT")
    assert answer["message"] == "The request body did not arrive within 1 seconds"
    assert headers["x-request-id"] == answer["requestId"]
    assert 0.9 < waited < 5
    assert not EntityRecord.objects.filter(organization=tenant_a.organization).exists()


@pytest.mark.django_db(transaction=True)
def test_a_body_over_the_server_limit_is_a_json_413(tenant_a):
    with served(CDP_REQUEST_MAX_BODY_BYTES="5000") as server:
        status, body = post(server, INGEST, b"{" + b" " * 6000 + b"}", {"TOKEN": "t"})

    assert (status, body["errorCode"]) == (413, "PAYLOAD_TOO_LARGE")
    assert body["message"] == "Request body exceeds 5000 bytes"


def probe(
    server: Server, tenants: tuple, tokens: dict[int, str]
) -> tuple[list[float], list[tuple[int, Any]], int]:
    """One ingest every PROBE_EVERY seconds for TRICKLE_SECONDS, the organizations in turn:
    each answer's latency and (status, body); a request that got no answer in 10 s is
    (0, the error)."""
    latencies: list[float] = []
    answers: list[tuple[int, Any]] = []
    ends = time.monotonic() + TRICKLE_SECONDS
    number = 0
    while time.monotonic() < ends:
        tenant = tenants[number % 2]
        started = time.monotonic()
        try:
            answers.append(
                post(
                    server,
                    INGEST,
                    ingest_body(tenant, f"PROBE-{number}"),
                    {"TOKEN": tokens[tenant.organization.pk], "API_KEY": tenant.raw_key},
                )
            )
        except OSError as error:
            answers.append((0, repr(error)))
        latencies.append(time.monotonic() - started)
        number += 1
        time.sleep(max(0.0, PROBE_EVERY - latencies[-1]))
    return latencies, answers, number


TRICKLERS = 20
TRICKLE_SECONDS = 30.0
PROBE_EVERY = 0.5


@pytest.mark.django_db(transaction=True)
def test_twenty_trickling_clients_do_not_starve_a_probe(tenant_a, tenant_b):
    """The shipped configuration (workers and threads as `make serve` sets them): twenty
    connections send their headers, then one byte of body a second, for 30 s; each is cut
    off with a JSON 408 at the body deadline and comes back. Meanwhile a probe ingests one
    record every 0.5 s, for each organization in turn: every probe is answered, at a p99
    under one second."""
    with served() as server:
        tokens = {t.organization.pk: authenticate(server, t) for t in (tenant_a, tenant_b)}
        stop = threading.Event()
        refusals: list[dict[str, Any]] = []
        lock = threading.Lock()

        def trickle(number: int) -> None:
            while not stop.is_set():
                sock = socket.create_connection((server.host, server.port), timeout=30)
                head = (
                    f"POST {INGEST} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"TOKEN: {tokens[tenant_a.organization.pk]}\r\n"
                    f"API_KEY: {tenant_a.raw_key}\r\nContent-Length: 100000\r\n\r\n"
                )
                try:
                    sock.sendall(head.encode())
                    sock.setblocking(False)
                    while not stop.is_set():
                        try:
                            if sock.recv(1, socket.MSG_PEEK):
                                break  # the server answered: read it below
                        except BlockingIOError:
                            pass
                        sock.send(b" ")
                        stop.wait(1.0)
                    if stop.is_set():
                        return
                    sock.setblocking(True)
                    status, _, content = raw_answer(sock)
                    with lock:
                        refusals.append({"status": status, **json.loads(content)})
                except OSError:
                    pass  # the server closed after its answer while we were sending
                finally:
                    sock.close()

        threads = [threading.Thread(target=trickle, args=(n,)) for n in range(TRICKLERS)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)  # every trickler connected and holding its request open
            latencies, answers, number = probe(server, (tenant_a, tenant_b), tokens)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=15)

    assert len(answers) >= TRICKLE_SECONDS / PROBE_EVERY * 0.9
    assert all(status == 200 and body["created"] == 1 for status, body in answers), [
        answer for answer in answers if answer[0] != 200
    ][:5]
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert p99 < 1.0, f"probe p99 {p99:.3f} s"
    # Every trickler was cut off at the 10 s deadline at least twice in 30 s, in JSON.
    assert len(refusals) >= 2 * TRICKLERS
    assert {(r["status"], r["errorCode"]) for r in refusals} == {(408, "REQUEST_TIMEOUT")}
    for tenant, count in ((tenant_a, (number + 1) // 2), (tenant_b, number // 2)):
        stored = EntityRecord.objects.filter(organization=tenant.organization)
        assert stored.count() == count
        assert set(stored.values_list("key", flat=True)) == {
            f"PROBE-{n}" for n in range(number) if n % 2 == (tenant is tenant_b)
        }


@pytest.mark.django_db(transaction=True)
def test_an_underscore_spelled_x_forwarded_for_cannot_pose_as_the_proxy_s(tenant_a):
    """Behind one trusted proxy, failed authen attempts count at the address the proxy
    appended to X-Forwarded-For. A client's own `X_Forwarded_For`, passed on by a proxy
    that lets underscores through (nginx with `underscores_in_headers on`, for API_KEY),
    would land on the same WSGI key after the proxy's and be taken as the address: each
    attempt from a new made-up address, never limited. It is dropped."""
    # Both windows at 3: the windows are fixed, so attempts on either side of a minute's
    # start would fill no minute window; they fill the hour's.
    limits = {
        "CDP_TRUSTED_PROXIES": "1",
        "CDP_AUTHEN_ATTEMPTS_PER_MINUTE": "3",
        "CDP_AUTHEN_ATTEMPTS_PER_HOUR": "3",
    }
    with served(WEB_CONCURRENCY="1", **limits) as server:
        credentials = json.dumps(
            {"username": tenant_a.username, "apiKey": "wrong", "cdpGKey": tenant_a.group_key}
        ).encode()
        statuses = []
        for attempt in range(4):
            headers = {
                "X-Forwarded-For": "198.51.100.7",
                "X_Forwarded_For": f"203.0.113.{attempt}",
            }
            status, body = post(server, AUTHEN, credentials, headers)
            statuses.append((status, body["errorCode"]))

    assert statuses == [(401, "UNAUTHORIZED")] * 3 + [(429, "RATE_LIMITED")]
