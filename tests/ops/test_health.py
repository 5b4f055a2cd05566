"""`/healthz` answers without the database; `/readyz` checks the database and the cache,
and answers 503 naming what failed."""

from __future__ import annotations

import socket

import pytest
from django.core.cache import cache
from django.db.utils import ConnectionHandler

from cdp.api import health


def test_healthz_answers_without_touching_the_database(client):
    # No `db` fixture: pytest-django fails any database access in this test.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(response["X-Request-Id"]) == 32


def test_readyz_reports_every_check(client, db):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "cache": "ok"}}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_readyz_is_503_when_the_database_is_unreachable(client, db, monkeypatch, caplog):
    # A real connection attempt to a port nobody listens on.
    unreachable = ConnectionHandler(
        {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": "127.0.0.1",
                "PORT": _closed_port(),
                "NAME": "cdp",
                "USER": "cdp",
                "PASSWORD": "not-a-real-password",
                "OPTIONS": {"connect_timeout": 2},
            }
        }
    )
    monkeypatch.setattr(health, "connections", unreachable)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "failed: OperationalError", "cache": "ok"},
    }
    assert "readiness check database failed" in caplog.text
    assert "not-a-real-password" not in response.content.decode()
    unreachable.close_all()


def test_readyz_is_503_when_the_cache_is_unreachable(client, db, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(cache, "set", refuse)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "cache": "failed: ConnectionError"}


def test_health_endpoints_need_no_credentials_and_are_not_rate_limited(client, db):
    statuses = {client.get(path).status_code for path in ("/healthz", "/readyz") for _ in range(60)}

    assert statuses == {200}


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_only_answer_get_and_head(client, db, path):
    assert client.head(path).status_code == 200
    assert client.post(path).status_code == 405
