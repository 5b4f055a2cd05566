"""Unknown API URLs and server errors answer in the API's error body, never an HTML page."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import authenticate


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "path", ["/dhub-i/api/v1.0/nope", "/dhub-i/api/v1.0/ingest/", "/api/accounts/authen/x"]
)
def test_an_unknown_api_path_answers_not_found_in_the_error_body(db, settings, path, debug):
    """With DEBUG on too: Django's own answer to an unmatched path is then its HTML page."""
    settings.DEBUG = debug
    response = Client().post(path, "{}", content_type="application/json")

    body = response.json()
    assert response.status_code == 404
    assert body == {
        "success": False,
        "errorCode": "NOT_FOUND",
        "message": f"No such endpoint: {path}",
        "requestId": response["X-Request-Id"],
    }


def test_an_unknown_console_path_keeps_the_html_page(db):
    response = Client().get("/not-an-api/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_server_error_on_an_api_path_has_no_trace(tenant_a, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("ingestion.api.views.selectors.record_get", explode)
    token = authenticate(APIClient(), tenant_a)
    response = Client(raise_request_exception=False).get(
        "/dhub-i/api/v1.0/records/order/O-1", HTTP_TOKEN=token, HTTP_API_KEY=tenant_a.raw_key
    )

    assert response.status_code == 500
    body = response.json()
    assert body["errorCode"] == "INTERNAL_ERROR"
    assert body["requestId"] == response["X-Request-Id"]
    assert "secret internals" not in response.content.decode()
