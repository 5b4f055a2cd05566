"""The API's documentation pages, Swagger UI at /api/docs/ and ReDoc at /api/redoc/, in a
real browser with every request off the server refused: everything they load is served
by the server itself (drf-spectacular-sidecar), so they render on an offline network."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest


def _offline(page: Any, server: str) -> list[str]:
    """Refuse every request to another host; the list of those refused."""
    own = urlsplit(server).netloc
    refused: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if urlsplit(url).netloc == own:
            request_route.continue_()
        else:
            refused.append(url)
            request_route.abort()

    page.route("**/*", route)
    return refused


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/api/docs/", "#swagger-ui .information-container .title"),
        ("/api/redoc/", "redoc-wrap h1, .api-info h1"),
    ],
)
def test_the_api_docs_render_with_the_network_off(new_page, console_server, path, rendered):
    page = new_page()
    refused = _offline(page, console_server)

    page.goto(console_server + path)
    title = page.locator(rendered).first
    title.wait_for()

    assert "cdp" in title.inner_text()
    assert refused == []
    # The operations are listed, so the schema loaded and was drawn.
    assert "/dhub-i/api/v1.0/ingest" in page.content()
