"""The one header with an underscore that the wire contract needs: `API_KEY`.

PangoCDP clients send `API_KEY` (or `api_key`). Web servers drop headers whose names hold
an underscore, because `API_KEY` and `API-KEY` both become `HTTP_API_KEY` in WSGI and one
could spoof the other. Here both spellings mean the same credential, so nothing can be
spoofed by the ambiguity, and only this header is let through. The production server
does the same (cdp/asgi.py's guard keeps `API_KEY` and drops every other underscore
name; docs/deploy.md).
"""

from __future__ import annotations

from django.core.servers import basehttp

UNDERSCORE_HEADERS = frozenset({"api_key"})


class WireHeadersRequestHandler(basehttp.WSGIRequestHandler):
    """Django's development request handler, keeping the `API_KEY` header."""

    def get_environ(self) -> dict[str, str]:
        kept = [(k, v) for k, v in self.headers.items() if k.lower() in UNDERSCORE_HEADERS]
        environ = super().get_environ()
        for name, value in kept:
            environ["HTTP_" + name.upper()] = value
        return environ
