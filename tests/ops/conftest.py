"""Fixtures for the operations tests: a real HTTP server on 127.0.0.1 that records the
callbacks it receives, and a tenant whose callback points at it."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rest_framework.test import APIClient

from cdp.callback_settings import callback_settings_set
from tests.conftest import Tenant

INGEST_URL = "/dhub-i/api/v1.0/ingest"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class CallbackServer:
    """Answers each POST with the next status of `statuses` (then 200), after `delay`
    seconds; records every request and counts them per X-Request-Id."""

    url: str
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    per_request_id: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(server: CallbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with server.lock:
                server.received.append(Received(self.path, dict(self.headers.items()), body))
                server.per_request_id[self.headers.get("X-Request-Id", "")] += 1
                status = server.statuses.pop(0) if server.statuses else 200
            if server.delay:
                time.sleep(server.delay)
            payload = b'{"ok": true}' if status < 300 else b"partner is down"
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


@pytest.fixture
def callback_server() -> Iterator[CallbackServer]:
    recorder = CallbackServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    httpd.daemon_threads = True
    recorder.url = f"http://127.0.0.1:{httpd.server_address[1]}/cdp-callback?partner=acme"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield recorder
    httpd.shutdown()
    httpd.server_close()


def callback_enable(tenant: Tenant, url: str) -> str:
    """Turn the tenant's callback on; returns its secret."""
    secret = callback_settings_set(organization=tenant.organization, url=url, enabled=True)
    assert secret is not None
    return secret


def ingest(client: APIClient, tenant: Tenant, token: str, entries: list[Any], **query: str):
    body = {"objectType": "custom-model", "source": "CRM", "entries": entries}
    suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    return client.post(
        INGEST_URL + suffix,
        data=json.dumps(body),
        content_type="application/json",
        headers={"TOKEN": token, "API_KEY": tenant.raw_key},
    )


def member(tenant: Tenant, ref_id: str, **fields: Any) -> dict[str, Any]:
    return {"momCode": tenant.mom_code, "refId": ref_id, **fields}
