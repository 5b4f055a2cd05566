"""The development server lets the `API_KEY` header through (real clients send it)."""

import http.client
import threading

from django.core.servers.basehttp import WSGIServer

from cdp.wire_headers import WireHeadersRequestHandler


def _echo_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    seen = (
        f"{environ.get('HTTP_API_KEY')}|{environ.get('HTTP_TOKEN')}|{environ.get('HTTP_X_OTHER')}"
    )
    return [seen.encode()]


def _get(headers: dict[str, str]) -> str:
    server = WSGIServer(("127.0.0.1", 0), WireHeadersRequestHandler)
    server.set_app(_echo_app)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
        connection.request("GET", "/", headers=headers)
        return connection.getresponse().read().decode()
    finally:
        thread.join(timeout=5)
        server.server_close()


def test_api_key_header_with_underscore_reaches_the_application():
    assert _get({"API_KEY": "k1", "TOKEN": "t1"}) == "k1|t1|None"
    assert _get({"api_key": "k2", "token": "t2"}) == "k2|t2|None"


def test_other_underscore_headers_are_still_dropped():
    assert _get({"X_OTHER": "spoof", "TOKEN": "t"}) == "None|t|None"
