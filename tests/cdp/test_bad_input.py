"""POST /api/accounts/authen with bodies no client should send: each gets the API's JSON
error body (4xx), never a 500 or Django's HTML page, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client

from cdp import ratelimit
from cdp.models import AuthToken
from tests.raw_requests import chunked_post, error_of

URL = "/api/accounts/authen"
# Django's default DATA_UPLOAD_MAX_MEMORY_SIZE: the Authentication API's body limit.
DJANGO_LIMIT = 2_621_440


def credentials(tenant, **overrides: Any) -> dict[str, Any]:
    body = {"username": tenant.username, "apiKey": tenant.raw_key, "cdpGKey": tenant.group_key}
    body.update(overrides)
    return body


def post(body: bytes | str, **extra: Any):
    client = Client(raise_request_exception=False)
    return client.post(URL, data=body, content_type="application/json", **extra)


def assert_invalid_credentials(response) -> None:
    assert error_of(response, 401, "UNAUTHORIZED")["message"] == "Invalid credentials"
    assert AuthToken.objects.count() == 0


# --- U+0000 and lone surrogates ----------------------------------------------------------


@pytest.mark.parametrize("field", ["username", "apiKey", "cdpGKey"])
@pytest.mark.parametrize("where", ["inside", "alone", "appended"])
def test_a_nul_in_a_credential_is_invalid_credentials(tenant_a, field, where):
    # No stored username, key or group key holds U+0000 (PostgreSQL cannot store it), so
    # this is a wrong combination like any other: the same 401, not a 500 from the query.
    value = credentials(tenant_a)[field]
    value = {"inside": value[:3] + "\x00" + value[3:], "alone": "\x00", "appended": value + "\x00"}[
        where
    ]

    assert_invalid_credentials(post(json.dumps(credentials(tenant_a, **{field: value}))))


def test_a_nul_attempt_counts_as_a_failed_attempt(tenant_a, settings, monkeypatch):
    settings.CDP_AUTHEN_RATE_LIMITS = [(2, 60)]
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: 1_700_000_010.0))
    nul_username = json.dumps(credentials(tenant_a, username=tenant_a.username + "\x00"))
    nul_key = json.dumps(credentials(tenant_a, apiKey="\x00" + tenant_a.raw_key))

    assert_invalid_credentials(post(nul_username, REMOTE_ADDR="10.9.0.1"))
    assert_invalid_credentials(post(nul_key, REMOTE_ADDR="10.9.0.1"))

    # Two failures from this address: the right credentials are now refused too.
    response = post(json.dumps(credentials(tenant_a)), REMOTE_ADDR="10.9.0.1")
    assert error_of(response, 429, "RATE_LIMITED")


@pytest.mark.parametrize(
    "escaped", ["\\ud800", "\\udfff", "a\\ud83d", "\\ude00b"], ids=["high", "low", "end", "start"]
)
def test_a_lone_surrogate_is_invalid_json(tenant_a, escaped):
    raw = json.dumps(credentials(tenant_a, username="USER")).replace("USER", escaped)

    body = error_of(post(raw), 400, "INVALID_JSON")

    assert body["message"].startswith("Body is not valid JSON"), body
    assert AuthToken.objects.count() == 0


def test_an_escaped_surrogate_pair_is_a_character_like_any_other(tenant_a):
    raw = json.dumps(credentials(tenant_a, username="USER")).replace("USER", "\\ud83d\\ude00")

    assert_invalid_credentials(post(raw))  # a valid username, just not anyone's


# --- nesting, NaN ------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1025, 10_000, 100_000])
def test_deep_nesting_is_invalid_json(tenant_a, depth):
    raw = '{"username": ' + "[" * depth + "]" * depth + "}"

    body = error_of(post(raw), 400, "INVALID_JSON")

    assert body["message"].startswith("Body is not valid JSON"), body


def test_nesting_to_the_parser_limit_is_read(tenant_a):
    # 1024 levels are fine (a nonsensical username, so MISSING_INFO, not a parse error).
    raw = '{"username": ' + "[" * 1023 + "]" * 1023 + "}"

    assert error_of(post(raw), 400, "MISSING_INFO")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_invalid_json(tenant_a, constant):
    raw = json.dumps(credentials(tenant_a, apiKey="KEY")).replace('"KEY"', constant)

    error_of(post(raw), 400, "INVALID_JSON")


# --- size --------------------------------------------------------------------------------


def _padded(tenant, size: int) -> bytes:
    """Valid credentials, padded with spaces to exactly `size` bytes."""
    raw = json.dumps(credentials(tenant)).encode()
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def test_a_body_over_django_s_limit_is_413_in_json(tenant_a):
    response = post(_padded(tenant_a, 3_000_000))

    body = error_of(response, 413, "PAYLOAD_TOO_LARGE")
    assert str(DJANGO_LIMIT) in body["message"], body
    assert AuthToken.objects.count() == 0


def test_a_body_over_the_limit_is_413_even_when_not_json(tenant_a):
    response = post(b"\xff" * (DJANGO_LIMIT + 1))

    error_of(response, 413, "PAYLOAD_TOO_LARGE")


def test_the_limit_is_django_s_data_upload_setting(tenant_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 400

    assert post(_padded(tenant_a, 400)).status_code == 200
    body = error_of(post(_padded(tenant_a, 401)), 413, "PAYLOAD_TOO_LARGE")
    assert "400" in body["message"]


def test_a_declared_length_over_the_limit_is_413_before_reading(tenant_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 400

    response = post(_padded(tenant_a, 300), CONTENT_LENGTH="5000")

    error_of(response, 413, "PAYLOAD_TOO_LARGE")


# --- Transfer-Encoding: chunked ----------------------------------------------------------


def test_a_chunked_body_is_read(tenant_a):
    response = chunked_post(URL, json.dumps(credentials(tenant_a)).encode())

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "authenticated"
    assert AuthToken.objects.filter(api_key=tenant_a.api_key).count() == 1


def test_a_chunked_body_of_wrong_credentials_is_invalid_credentials(tenant_a):
    body = json.dumps(credentials(tenant_a, apiKey="0" * 40)).encode()

    assert_invalid_credentials(chunked_post(URL, body))


def test_a_chunked_body_over_the_limit_is_413(tenant_a):
    response = chunked_post(URL, _padded(tenant_a, 3_000_000))

    error_of(response, 413, "PAYLOAD_TOO_LARGE")


def test_a_chunked_body_at_the_limit_is_read(tenant_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 400

    assert chunked_post(URL, _padded(tenant_a, 400)).status_code == 200
    error_of(chunked_post(URL, _padded(tenant_a, 401)), 413, "PAYLOAD_TOO_LARGE")


def test_an_empty_chunked_body_is_missing_info(tenant_a):
    body = error_of(chunked_post(URL, b""), 400, "MISSING_INFO")

    assert body["message"] == "Username and ApiKey are required"


def test_no_data_upload_limit_means_none_here_either(tenant_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None

    assert post(_padded(tenant_a, 3_000_000)).status_code == 200
    assert chunked_post(URL, _padded(tenant_a, 3_000_000)).status_code == 200
