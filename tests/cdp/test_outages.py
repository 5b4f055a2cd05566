"""While the database or the cache (Redis) cannot be reached, every API call answers 503
SERVICE_UNAVAILABLE naming which, with `Retry-After`, in the error body shape; the real
exception goes to the log only. Other errors stay 500 INTERNAL_ERROR (in JSON under DEBUG
too). `/readyz` names the failed check meanwhile, and once the outage ends the next
request is served, without a restart.

Outages are simulated three ways, from cheapest to most real:

- `ensure_connection` raising OperationalError (every query fails before reaching the
  database; the test's transaction is untouched, so the usual `db` fixture works);
- a real connection attempt that fails: the connection closed, its settings pointed at a
  port nobody listens on (PostgreSQL) or a file that cannot be opened (SQLite), or the
  cache pointed at a closed Redis port; these need `transactional_db` (a connection closed
  inside the test's transaction would lose it);
- a real outage and recovery: the PostgreSQL backend of the open connection terminated
  (a broken connection), and a Redis server of the test's own stopped and started again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.db import DataError, IntegrityError, InterfaceError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from tests.conftest import Tenant, authenticate
from tests.contract import ERROR_KEYS

INGEST = "/dhub-i/api/v1.0/ingest"
RETRY_AFTER = "5"
DATABASE_DOWN = "The database is unavailable; retry later"
CACHE_DOWN = "The cache is unavailable; retry later"
# What a driver's message may hold: host, user, a password in a DSN. Never in an answer.
SECRET = 'connection to server at "10.9.8.7", port 5432 failed: password=hunter2-secret'
REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"


# --- the API calls -----------------------------------------------------------------------


def _auth(tenant: Tenant, token: str) -> dict[str, str]:
    return {"TOKEN": token, "API_KEY": tenant.raw_key}


def _authen(client: Any, tenant: Tenant, token: str) -> Any:
    body = {"username": tenant.username, "apiKey": tenant.raw_key, "cdpGKey": tenant.group_key}
    return client.post("/api/accounts/authen", json.dumps(body), content_type="application/json")


def _ingest(client: Any, tenant: Tenant, token: str, ref_id: str = "R-2", tier: str = "new") -> Any:
    entry = {
        "momCode": tenant.mom_code,
        "refId": ref_id,
        "customFieldTexts": {"customField01": tier},
    }
    body = {"objectType": "custom-model", "source": "CRM", "entries": [entry]}
    return client.post(
        INGEST, json.dumps(body), content_type="application/json", headers=_auth(tenant, token)
    )


def _record(client: Any, tenant: Tenant, token: str) -> Any:
    return client.get(
        "/dhub-i/api/v1.0/records/custom-model/R-1",
        {"momCode": tenant.mom_code},
        headers=_auth(tenant, token),
    )


def _history(client: Any, tenant: Tenant, token: str) -> Any:
    return client.get(
        "/dhub-i/api/v1.0/record-history/custom-model/R-1",
        {"momCode": tenant.mom_code},
        headers=_auth(tenant, token),
    )


def _user_events(client: Any, tenant: Tenant, token: str) -> Any:
    return client.get("/dhub-i/api/v1.0/user-events", headers=_auth(tenant, token))


CALLS: dict[str, Callable[[Any, Tenant, str], Any]] = {
    "authen": _authen,
    "ingest": _ingest,
    "record": _record,
    "record-history": _history,
    "user-events": _user_events,
}


@pytest.fixture
def tenants(client, tenant_a, tenant_b) -> list[tuple[Tenant, str]]:
    """Both organizations, each with a token and its own record R-1 (gold, silver)."""
    seeded = []
    for tenant, tier in ((tenant_a, "gold"), (tenant_b, "silver")):
        token = authenticate(client, tenant)
        response = _ingest(client, tenant, token, ref_id="R-1", tier=tier)
        assert response.status_code == 200, response.content
        seeded.append((tenant, token))
    return seeded


def assert_unavailable(response: Any, message: str) -> None:
    body = response.json()
    assert response.status_code == 503, body
    assert body == {
        "success": False,
        "errorCode": "SERVICE_UNAVAILABLE",
        "message": message,
        "requestId": response["X-Request-Id"],
    }
    assert len(body["requestId"]) == 32
    assert response["Retry-After"] == RETRY_AFTER
    assert response["Content-Type"] == "application/json"
    content = response.content.decode()
    for leak in ("hunter2", "10.9.8.7", "Traceback", "OperationalError", "Connection refused"):
        assert leak not in content


def assert_served(response: Any, tenant: Tenant, call: str) -> None:
    body = response.json()
    assert response.status_code == 200, body
    assert body["success"] is True
    if call == "record":
        expected = "gold" if tenant.organization.name == "Acme Retail" else "silver"
        assert body["record"]["data"]["customField01"] == expected  # its own, no other's


def readyz(client: Any) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    return response.status_code, response.json()


# --- the database, simulated: every query fails ------------------------------------------


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise OperationalError(SECRET)


@pytest.mark.parametrize("call", list(CALLS))
def test_database_outage_answers_503_on_every_api_call(client, tenants, call, monkeypatch, caplog):
    with monkeypatch.context() as outage:
        outage.setattr(BaseDatabaseWrapper, "ensure_connection", _refuse)
        for tenant, token in tenants:
            assert_unavailable(CALLS[call](client, tenant, token), DATABASE_DOWN)
        # /readyz says which dependency failed, meanwhile.
        assert readyz(client) == (
            503,
            {
                "status": "unavailable",
                "checks": {"database": "failed: OperationalError", "cache": "ok"},
            },
        )

    # The log keeps the real exception, which the answer never showed.
    outage_lines = [
        r
        for r in caplog.records
        if r.name == "django.request" and r.request.path.startswith(("/api/", "/dhub-i/"))
    ]
    assert len(outage_lines) == len(tenants)
    for line in outage_lines:
        assert line.status_code == 503 and line.exc_info is not None
        assert "(the database: OperationalError)" in line.getMessage()
    assert "OperationalError" in caplog.text and "hunter2-secret" in caplog.text
    # The outage over, the next requests are served, each organization its own data.
    for tenant, token in tenants:
        assert_served(CALLS[call](client, tenant, token), tenant, call)
    assert readyz(client)[0] == 200


def test_a_broken_connection_interface_error_is_an_outage_too(client, tenants, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> None:
        raise InterfaceError("connection already closed")

    tenant, token = tenants[0]
    with monkeypatch.context() as outage:
        outage.setattr(BaseDatabaseWrapper, "ensure_connection", broken)
        assert_unavailable(_record(client, tenant, token), DATABASE_DOWN)
    assert_served(_record(client, tenant, token), tenant, "record")


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("duplicate key value violates unique constraint"),
        DataError("value too long for type character varying(64)"),
        redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        RuntimeError("a bug"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_other_errors_are_still_500_without_retry_after(tenants, monkeypatch, error):
    def explode(**kwargs: Any) -> None:
        raise error

    monkeypatch.setattr("ingestion.api.views.selectors.record_get", explode)
    tenant, token = tenants[0]
    response = _record(Client(raise_request_exception=False), tenant, token)

    body = response.json()
    assert response.status_code == 500, body
    assert body["errorCode"] == "INTERNAL_ERROR"
    assert body["requestId"] == response["X-Request-Id"]
    assert "Retry-After" not in response
    assert str(error) not in response.content.decode()


# --- the cache: a Redis port nobody listens on -------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _redis_cache(url: str) -> dict[str, Any]:
    return {"default": {"BACKEND": REDIS_BACKEND, "LOCATION": url, "KEY_PREFIX": "cdp-outage"}}


@pytest.mark.parametrize("call", list(CALLS))
def test_cache_outage_answers_503_on_every_api_call(client, tenants, call, settings, caplog):
    working = settings.CACHES
    # The shared store (and Django's cache) follow the setting: a real connection attempt.
    settings.CACHES = _redis_cache(f"redis://127.0.0.1:{_closed_port()}/15")

    for tenant, token in tenants:
        assert_unavailable(CALLS[call](client, tenant, token), CACHE_DOWN)
    assert readyz(client) == (
        503,
        {"status": "unavailable", "checks": {"database": "ok", "cache": "failed: ConnectionError"}},
    )
    assert "ConnectionError" in caplog.text  # redis-py's, the cause, kept in the log

    settings.CACHES = working
    for tenant, token in tenants:
        assert_served(CALLS[call](client, tenant, token), tenant, call)
    assert readyz(client)[0] == 200


# --- the database, for real --------------------------------------------------------------


@contextlib.contextmanager
def database_unreachable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The default connection closed and pointed where no database answers, so the next
    query really tries to connect and fails; then pointed back."""
    connection = connections["default"]
    connection.close()
    if connection.vendor == "sqlite":
        where = ("NAME", "/nonexistent-cdp-outage-dir/cdp.sqlite3")  # "unable to open"
    else:
        where = ("PORT", str(_closed_port()))  # "connection refused"
    with monkeypatch.context() as outage:
        outage.setitem(connection.settings_dict, *where)
        yield
        connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("call", ["authen", "ingest", "record"])
def test_unreachable_database_answers_503_then_the_next_request_reconnects(
    client, tenants, call, monkeypatch
):
    with database_unreachable(monkeypatch):
        for tenant, token in tenants:
            assert_unavailable(CALLS[call](client, tenant, token), DATABASE_DOWN)
        status, body = readyz(client)
        assert (status, body["checks"]["database"]) == (503, "failed: OperationalError")

    for tenant, token in tenants:
        assert_served(CALLS[call](client, tenant, token), tenant, call)
    assert readyz(client)[0] == 200


def _terminate_backend(connection: BaseDatabaseWrapper) -> None:
    """Kill the PostgreSQL server process of `connection`, as a database restart or a
    failover does; the client side learns it on its next query."""
    pid = connection.connection.info.backend_pid
    killer = connections.create_connection("default")
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
    finally:
        killer.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_the_database_dropped_is_replaced_for_the_next_request(client, tenants):
    if connections["default"].vendor != "postgresql":
        pytest.skip("needs PostgreSQL: an SQLite connection cannot be dropped by a server")
    tenant, token = tenants[0]
    assert_served(_record(client, tenant, token), tenant, "record")
    connection = connections["default"]
    try:
        _terminate_backend(connection)

        assert_unavailable(_record(client, tenant, token), DATABASE_DOWN)
        # The dead connection is not kept: the next request (and the next probe)
        # reconnect. The test client, unlike a server, sends no request_finished signal,
        # on which Django would drop it too.
        assert connection.connection is None
        assert_served(_record(client, tenant, token), tenant, "record")
        other, other_token = tenants[1]
        assert_served(_record(client, other, other_token), other, "record")

        _terminate_backend(connection)
        assert readyz(client)[0] == 503
        assert readyz(client)[0] == 200
    finally:  # never leave a dead connection to the next test
        if connection.connection is not None and not connection.is_usable():
            connection.close()


# --- Redis, for real: a server of the test's own, stopped and started again ----------------


class DisposableRedis:
    def __init__(self, binary: str, directory: str) -> None:
        self.binary, self.directory = binary, directory
        self.port = _closed_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        probe.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path) -> Iterator[DisposableRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: the Redis restart test needs one of its own")
    server = DisposableRedis(binary, str(tmp_path))
    server.start()
    yield server
    server.stop()


def test_redis_stopped_answers_503_and_once_it_is_back_requests_are_served(
    client, tenants, own_redis, settings
):
    settings.CACHES = _redis_cache(own_redis.url)
    for tenant, token in tenants:
        assert_served(_record(client, tenant, token), tenant, "record")

    own_redis.stop()
    for tenant, token in tenants:
        assert_unavailable(_record(client, tenant, token), CACHE_DOWN)
        assert_unavailable(_authen(client, tenant, token), CACHE_DOWN)
    assert readyz(client)[1]["checks"] == {"database": "ok", "cache": "failed: ConnectionError"}

    own_redis.start()  # empty: tokens are verified from the database again
    for tenant, token in tenants:
        assert_served(_record(client, tenant, token), tenant, "record")
        assert_served(_authen(client, tenant, token), tenant, "authen")
    assert readyz(client)[0] == 200


def test_a_redis_that_stops_answering_gives_503_within_its_socket_timeout(
    client, tenants, own_redis, settings
):
    """Frozen, not stopped (SIGSTOP: it accepts connections and answers nothing): the
    cache's socket timeout holds for the shared store too, so the request fails with a 503
    instead of holding its worker; once it answers again, requests are served."""
    cache = _redis_cache(own_redis.url)
    cache["default"]["OPTIONS"] = {"socket_timeout": 0.3, "socket_connect_timeout": 0.3}
    settings.CACHES = cache
    for tenant, token in tenants:
        assert_served(_record(client, tenant, token), tenant, "record")
    assert own_redis.process is not None

    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        for tenant, token in tenants:
            began = time.monotonic()
            assert_unavailable(_record(client, tenant, token), CACHE_DOWN)
            assert time.monotonic() - began < 3
    finally:
        own_redis.process.send_signal(signal.SIGCONT)

    for tenant, token in tenants:
        assert_served(_record(client, tenant, token), tenant, "record")


# --- the deployed handler (cdp/handler.py: the API's short chain), as a server calls it --


def wsgi(method: str, path: str, *, headers: dict[str, str] | None = None, data: str = "") -> Any:
    """One request through `CdpWSGIHandler`, with the request_started/finished signals a
    server sends (Django closes unusable connections on them)."""
    from cdp.handler import CdpWSGIHandler

    environ = (
        RequestFactory()
        .generic(method, path, data, content_type="application/json", headers=headers)
        .environ
    )
    started: dict[str, Any] = {}

    def start_response(status: str, response_headers: list, exc_info: Any = None) -> None:
        started["status"] = int(status.split()[0])
        started["headers"] = dict(response_headers)

    response = CdpWSGIHandler()(environ, start_response)
    try:
        content = b"".join(response)
    finally:
        response.close()
    return started["status"], started["headers"], content


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_the_deployed_handler_answers_503_with_retry_after(
    client, tenants, monkeypatch, settings, debug
):
    settings.DEBUG = debug
    tenant, token = tenants[0]
    path = f"/dhub-i/api/v1.0/records/custom-model/R-1?momCode={tenant.mom_code}"

    with database_unreachable(monkeypatch):
        status, headers, content = wsgi("GET", path, headers=_auth(tenant, token))
        ingest = wsgi("POST", INGEST, headers=_auth(tenant, token), data="{}")

    body = json.loads(content)
    assert status == 503, body
    assert body == {
        "success": False,
        "errorCode": "SERVICE_UNAVAILABLE",
        "message": DATABASE_DOWN,
        "requestId": headers["X-Request-Id"],
    }
    assert headers["Retry-After"] == RETRY_AFTER
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(content))
    assert ingest[0] == 503 and json.loads(ingest[2])["errorCode"] == "SERVICE_UNAVAILABLE"
    status, _headers, content = wsgi("GET", path, headers=_auth(tenant, token))
    assert status == 200, content


# --- DEBUG (make run): API server errors answer JSON, the Console keeps Django's pages ----


def _break_record_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(**kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("ingestion.api.views.selectors.record_get", explode)


def _break_ingest(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(**kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("ingestion.api.views.ingest", explode)


def assert_internal_error(status: int, headers: Any, content: bytes) -> None:
    assert status == 500, content[:300]
    assert headers["Content-Type"] == "application/json"
    body = json.loads(content)
    assert set(body) == ERROR_KEYS
    assert body == {
        "success": False,
        "errorCode": "INTERNAL_ERROR",
        "message": "Internal error; quote the requestId",
        "requestId": headers["X-Request-Id"],
    }
    assert b"secret internals" not in content


@pytest.mark.parametrize("call", ["record", "ingest"])
def test_in_debug_an_api_server_error_answers_the_json_body(
    tenants, monkeypatch, settings, call, caplog
):
    settings.DEBUG = True
    (_break_record_read if call == "record" else _break_ingest)(monkeypatch)
    tenant, token = tenants[0]

    response = CALLS[call](Client(raise_request_exception=False), tenant, token)

    assert_internal_error(response.status_code, response, response.content)
    # The trace is in the log, as without DEBUG.
    assert "secret internals" in caplog.text
    [line] = [
        r for r in caplog.records if r.name == "django.request" and r.levelno >= logging.ERROR
    ]
    assert line.exc_info is not None


def test_in_debug_an_api_server_error_still_raises_in_the_test_client(
    tenants, monkeypatch, settings
):
    # Like without DEBUG: Django's got_request_exception signal is sent.
    settings.DEBUG = True
    _break_record_read(monkeypatch)
    tenant, token = tenants[0]

    with pytest.raises(RuntimeError, match="secret internals"):
        _record(APIClient(), tenant, token)


@pytest.mark.django_db(transaction=True)
def test_in_debug_the_deployed_handler_answers_the_json_body(tenants, monkeypatch, settings):
    settings.DEBUG = True
    _break_record_read(monkeypatch)
    tenant, token = tenants[0]
    path = f"/dhub-i/api/v1.0/records/custom-model/R-1?momCode={tenant.mom_code}"

    assert_internal_error(*wsgi("GET", path, headers=_auth(tenant, token)))


def test_in_debug_the_console_keeps_django_debug_page(db, monkeypatch, settings):
    settings.DEBUG = True

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("console internals")

    monkeypatch.setattr("django.contrib.auth.views.LoginView.get_context_data", explode)
    response = Client(raise_request_exception=False).get("/console/login/")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert b"console internals" in response.content  # Django's technical page
