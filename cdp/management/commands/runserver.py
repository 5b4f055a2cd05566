"""`runserver` that lets the `API_KEY` header through (see cdp/wire_headers.py)."""

from typing import Any

from django.contrib.staticfiles.management.commands.runserver import (
    Command as DjangoRunserver,
)
from django.core.servers import basehttp

from cdp.wire_headers import WireHeadersRequestHandler


class Command(DjangoRunserver):
    help = DjangoRunserver.help + " Keeps the API_KEY header of the Data Ingestion API."

    def inner_run(self, *args: Any, **options: Any) -> None:
        # Django's `run()` builds its server with the module's WSGIRequestHandler: replace
        # the module's class on purpose (mypy refuses assigning to a class name).
        basehttp.WSGIRequestHandler = WireHeadersRequestHandler  # type: ignore[misc]
        super().inner_run(*args, **options)
