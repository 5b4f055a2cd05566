"""POST /dhub-i/api/v1.0/ingest: the request checks of DESIGN §6, row by row and in order.

Each test goes through HTTP and asserts on the body, the `X-Request-Id` header, the
IngestionRequest log row and what was (not) stored, with two organizations.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from cdp import services
from cdp.models import AuthToken, EntityRecord, Organization
from ingestion.models import IngestionRequest
from tests.conftest import authenticate
from tests.contract import ERROR_KEYS, INGEST_BODY_KEYS

URL = "/dhub-i/api/v1.0/ingest"
REQUEST_ID_RE = re.compile(r"\A[0-9a-f]{32}\Z")


# --- helpers -----------------------------------------------------------------------------


def auth(tenant, token: str) -> dict[str, str]:
    return {"TOKEN": token, "API_KEY": tenant.raw_key}


def entry(tenant, ref_id: str = "R-1", **fields: Any) -> dict[str, Any]:
    return {"momCode": tenant.mom_code, "refId": ref_id, **fields}


def body_of(tenant, **overrides: Any) -> dict[str, Any]:
    """A valid body in the field order of DESIGN §6; `overrides` replace or add fields and
    a value of `...` removes the field."""
    body: dict[str, Any] = {
        "objectType": "custom-model",
        "source": "CRM",
        "jeConfigId": None,
        "jeEventKey": None,
        "entries": [entry(tenant, customFieldTexts={"customField01": "gold"})],
        "ignoredUpdateCfs": [],
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def post(
    client,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    query: str = "",
    content_type: str = "application/json",
    **extra: Any,
):
    """Post `body` as a client would: a dict or list is JSON-encoded, str/bytes go as is."""
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(URL + query, data=data, content_type=content_type, headers=headers, **extra)


def error_of(response, status: int, error_code: str) -> dict[str, Any]:
    """The error body after checking its shape, status, code and request id."""
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == ERROR_KEYS, body
    assert body["success"] is False
    assert body["errorCode"] == error_code, body
    assert REQUEST_ID_RE.match(response["X-Request-Id"])
    assert body["requestId"] == response["X-Request-Id"]
    return body


def logged(tenant, response) -> IngestionRequest:
    """The one log row of this response, in the tenant's organization."""
    return IngestionRequest.objects.get(
        organization=tenant.organization, request_id=response["X-Request-Id"]
    )


def assert_refusal_logged(tenant, response, *, status: int, error_code: str) -> IngestionRequest:
    row = logged(tenant, response)
    body = response.json()
    assert (row.status, row.error_code, row.message) == (status, error_code, body["message"])
    assert row.api_key == tenant.api_key
    assert (row.total, row.created, row.updated, row.unchanged, row.failed) == (0, 0, 0, 0, 0)
    assert row.results == []
    assert IngestionRequest.objects.count() == 1
    return row


def nothing_stored() -> bool:
    return not EntityRecord.objects.exists()


@pytest.fixture
def api_key_a2(tenant_a):
    """A second API key of tenant A's member, with its raw value."""
    return services.api_key_create(membership=tenant_a.membership, name="second")


# --- a valid request, for contrast -------------------------------------------------------


def test_valid_request_is_stored_and_logged(client, tenant_a, token_a, tenant_b):
    response = post(client, body_of(tenant_a), headers=auth(tenant_a, token_a))

    body = response.json()
    assert response.status_code == 200, body
    assert set(body) == {"success", "requestId", *INGEST_BODY_KEYS}
    assert body["success"] is True
    assert body["requestId"] == response["X-Request-Id"]
    assert body["results"][0]["action"] == "created"
    record = EntityRecord.objects.get()
    assert record.organization == tenant_a.organization
    assert record.data["customField01"] == "gold"

    row = logged(tenant_a, response)
    assert (row.status, row.error_code, row.message) == (200, "", "")
    assert (row.object_type, row.source, row.init_data) == ("custom-model", "CRM", False)
    assert (row.total, row.created, row.updated, row.unchanged, row.failed) == (1, 1, 0, 0, 0)
    assert row.results == body["results"]
    assert not IngestionRequest.objects.filter(organization=tenant_b.organization).exists()


# --- 1. TOKEN or API_KEY missing ---------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda t, tok: {"API_KEY": t.raw_key}, id="no-token"),
        pytest.param(lambda t, tok: {"TOKEN": tok}, id="no-api-key"),
        pytest.param(lambda t, tok: {}, id="neither"),
        pytest.param(lambda t, tok: {"TOKEN": "  ", "API_KEY": t.raw_key}, id="blank-token"),
        pytest.param(lambda t, tok: {"TOKEN": tok, "API_KEY": ""}, id="empty-api-key"),
    ],
)
def test_missing_token_or_api_key_answers_401(client, tenant_a, token_a, headers):
    response = post(client, body_of(tenant_a), headers=headers(tenant_a, token_a))

    body = error_of(response, 401, "UNAUTHORIZED")
    assert body["message"] == "TOKEN and API_KEY headers are required"
    assert not IngestionRequest.objects.exists()
    assert nothing_stored()


@pytest.mark.parametrize(
    ("token_name", "key_name"),
    [("token", "api_key"), ("Token", "Api_Key"), ("TOKEN", "api_key"), ("tOkEn", "API_KEY")],
)
def test_header_names_are_case_insensitive(client, tenant_a, token_a, token_name, key_name):
    headers = {token_name: token_a, key_name: tenant_a.raw_key}
    response = post(client, body_of(tenant_a), headers=headers)

    assert response.status_code == 200, response.json()
    assert EntityRecord.objects.get().organization == tenant_a.organization
    assert logged(tenant_a, response).status == 200


def test_headers_given_as_wsgi_meta_are_read(client, tenant_a, token_a):
    # What a WSGI server hands Django for `token: …` and `api_key: …`.
    response = post(client, body_of(tenant_a), HTTP_TOKEN=token_a, HTTP_API_KEY=tenant_a.raw_key)

    assert response.status_code == 200, response.json()
    assert EntityRecord.objects.count() == 1


# --- 2. invalid token or API key ---------------------------------------------------------


def _unknown_token(tenant_a, token_a, tenant_b, token_b, api_key_a2):
    return {"TOKEN": "x" * len(token_a), "API_KEY": tenant_a.raw_key}


def _token_of_tenant_b_with_key_of_a(tenant_a, token_a, tenant_b, token_b, api_key_a2):
    return {"TOKEN": token_b, "API_KEY": tenant_a.raw_key}


def _token_of_a_with_key_of_b(tenant_a, token_a, tenant_b, token_b, api_key_a2):
    return {"TOKEN": token_a, "API_KEY": tenant_b.raw_key}


def _token_of_a_with_another_key_of_a(tenant_a, token_a, tenant_b, token_b, api_key_a2):
    return {"TOKEN": token_a, "API_KEY": api_key_a2[1]}


def _unknown_api_key(tenant_a, token_a, tenant_b, token_b, api_key_a2):
    return {"TOKEN": token_a, "API_KEY": "0" * 40}


def _revoked_key(tenant_a, token_a, tenant_b, token_b, api_key_a2):
    services.api_key_revoke(organization=tenant_a.organization, api_key_id=tenant_a.api_key.pk)
    return auth(tenant_a, token_a)


def _key_marked_revoked_with_live_token(tenant_a, token_a, tenant_b, token_b, api_key_a2):
    # Revocation deletes tokens; a token row that survived (a race) must not work either.
    type(tenant_a.api_key).objects.filter(pk=tenant_a.api_key.pk).update(revoked_at=timezone.now())
    assert AuthToken.objects.filter(api_key=tenant_a.api_key).exists()
    return auth(tenant_a, token_a)


def _inactive_user(tenant_a, token_a, tenant_b, token_b, api_key_a2):
    tenant_a.user.is_active = False
    tenant_a.user.save(update_fields=["is_active"])
    return auth(tenant_a, token_a)


def _inactive_organization(tenant_a, token_a, tenant_b, token_b, api_key_a2):
    Organization.objects.filter(pk=tenant_a.organization.pk).update(is_active=False)
    return auth(tenant_a, token_a)


@pytest.mark.parametrize(
    "make_headers",
    [
        _unknown_token,
        _token_of_tenant_b_with_key_of_a,
        _token_of_a_with_key_of_b,
        _token_of_a_with_another_key_of_a,
        _unknown_api_key,
        _revoked_key,
        _key_marked_revoked_with_live_token,
        _inactive_user,
        _inactive_organization,
    ],
)
def test_invalid_token_or_api_key_answers_401(
    client, tenant_a, token_a, tenant_b, token_b, api_key_a2, make_headers
):
    headers = make_headers(tenant_a, token_a, tenant_b, token_b, api_key_a2)
    response = post(client, body_of(tenant_a), headers=headers)

    body = error_of(response, 401, "UNAUTHORIZED")
    assert body["message"] == "Invalid token or API key"
    assert not IngestionRequest.objects.exists()
    assert nothing_stored()


def test_token_of_tenant_b_with_its_own_key_still_works(client, tenant_a, tenant_b, token_b):
    # The refusals above are about the pairing, not about tenant B's credentials.
    response = post(client, body_of(tenant_b), headers=auth(tenant_b, token_b))

    assert response.status_code == 200, response.json()
    assert EntityRecord.objects.get().organization == tenant_b.organization
    assert logged(tenant_b, response).status == 200


# --- 3. token expired --------------------------------------------------------------------


def _expire_tokens(tenant) -> None:
    AuthToken.objects.filter(api_key=tenant.api_key).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_expired_token_answers_401(client, tenant_a, token_a):
    _expire_tokens(tenant_a)

    response = post(client, body_of(tenant_a), headers=auth(tenant_a, token_a))

    body = error_of(response, 401, "UNAUTHORIZED")
    assert body["message"] == "Token has expired"
    assert not IngestionRequest.objects.exists()
    assert nothing_stored()


def test_expired_token_with_the_wrong_key_answers_invalid_first(
    client, tenant_a, token_a, tenant_b
):
    _expire_tokens(tenant_a)

    response = post(
        client, body_of(tenant_a), headers={"TOKEN": token_a, "API_KEY": tenant_b.raw_key}
    )

    assert error_of(response, 401, "UNAUTHORIZED")["message"] == "Invalid token or API key"


def test_a_fresh_token_works_after_the_old_one_expired(client, tenant_a, token_a):
    _expire_tokens(tenant_a)
    fresh = authenticate(client, tenant_a)

    response = post(client, body_of(tenant_a), headers=auth(tenant_a, fresh))

    assert response.status_code == 200, response.json()
    assert (response.json()["success"], response.json()["created"]) == (True, 1)


# --- 5. body too large -------------------------------------------------------------------


def _padded(tenant, size: int) -> bytes:
    """A valid JSON body of exactly `size` bytes (trailing whitespace is valid JSON)."""
    raw = json.dumps(body_of(tenant)).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def test_body_over_the_limit_answers_413_naming_the_limit(client, tenant_a, token_a, settings):
    settings.CDP_INGEST_MAX_BODY_BYTES = 300

    response = post(client, _padded(tenant_a, 301), headers=auth(tenant_a, token_a))

    body = error_of(response, 413, "PAYLOAD_TOO_LARGE")
    assert "300" in body["message"], body
    assert nothing_stored()
    row = assert_refusal_logged(tenant_a, response, status=413, error_code="PAYLOAD_TOO_LARGE")
    assert row.object_type == ""  # refused before it was parsed


def test_body_of_exactly_the_limit_is_accepted(client, tenant_a, token_a, settings):
    settings.CDP_INGEST_MAX_BODY_BYTES = 300

    response = post(client, _padded(tenant_a, 300), headers=auth(tenant_a, token_a))

    assert response.status_code == 200, response.json()
    assert EntityRecord.objects.count() == 1


def test_default_limit_is_one_mebibyte(client, tenant_a, token_a):
    response = post(client, _padded(tenant_a, 1024 * 1024 + 1), headers=auth(tenant_a, token_a))

    assert str(1024 * 1024) in error_of(response, 413, "PAYLOAD_TOO_LARGE")["message"]


def test_declared_length_over_the_limit_answers_413(client, tenant_a, token_a, settings):
    settings.CDP_INGEST_MAX_BODY_BYTES = 300

    response = post(
        client, _padded(tenant_a, 250), headers=auth(tenant_a, token_a), CONTENT_LENGTH="5000"
    )

    error_of(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"{not json" + b" " * 400, "application/json"),
        (b"[" + b" " * 400 + b"]", "application/json"),
        (b"\xff" * 400, "application/json"),
        (b"{}" + b" " * 400, "text/plain"),
    ],
    ids=["invalid-json", "array", "invalid-utf8", "not-json-content-type"],
)
def test_too_large_and_invalid_answers_413(client, tenant_a, token_a, settings, data, content_type):
    settings.CDP_INGEST_MAX_BODY_BYTES = 300

    response = post(client, data, headers=auth(tenant_a, token_a), content_type=content_type)

    error_of(response, 413, "PAYLOAD_TOO_LARGE")


# --- 6. not a JSON object ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        ('{"objectType": "custom-model"}', "text/plain", "Content-Type must be application/json"),
        ('{"objectType": "custom-model"}', "application/x-www-form-urlencoded", "Content-Type"),
        (b'{"objectType": "custom-\xff"}', "application/json", "Body is not valid UTF-8"),
        ('{"objectType": "custom-model",', "application/json", "Body is not valid JSON"),
        ("", "application/json", "Body is not valid JSON"),
        ('{"a": NaN}', "application/json", "Body is not valid JSON"),
        ('[{"objectType": "custom-model"}]', "application/json", "Body must be a JSON object"),
        ('"custom-model"', "application/json", "Body must be a JSON object"),
        ("null", "application/json", "Body must be a JSON object"),
    ],
    ids=[
        "text-plain",
        "form",
        "invalid-utf8",
        "invalid-json",
        "empty",
        "nan",
        "array",
        "string",
        "null",
    ],
)
def test_body_not_a_json_object_answers_400_saying_which(
    client, tenant_a, token_a, data, content_type, message
):
    response = post(client, data, headers=auth(tenant_a, token_a), content_type=content_type)

    body = error_of(response, 400, "INVALID_JSON")
    assert body["message"].startswith(message), body
    assert nothing_stored()
    assert_refusal_logged(tenant_a, response, status=400, error_code="INVALID_JSON")


def test_deeply_nested_json_answers_400_not_500(client, tenant_a, token_a):
    depth = 100_000
    data = '{"objectType": ' + "[" * depth + "]" * depth + "}"

    response = post(client, data, headers=auth(tenant_a, token_a))

    assert error_of(response, 400, "INVALID_JSON")["message"].startswith("Body is not valid JSON")


@pytest.mark.parametrize(
    "data",
    [
        '{"objectType": "custom-model", "source": "C\\u0000RM", "entries": [{}]}',
        '{"objectType": "custom-model", "source": "\\ud800", "entries": [{}]}',
        '{"objectType": "custom-model", "source": "CRM", "entries": [{"refId": "R-\\u0000"}]}',
    ],
    ids=["nul-in-source", "lone-surrogate", "nul-in-entry"],
)
def test_text_that_cannot_be_stored_answers_400_not_500(client, tenant_a, token_a, data):
    # Valid JSON syntax, but PostgreSQL stores neither U+0000 nor a lone surrogate.
    response = post(client, data, headers=auth(tenant_a, token_a))

    error_of(response, 400, "INVALID_JSON")
    assert nothing_stored()


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json"],
)
def test_json_content_type_variants_are_accepted(client, tenant_a, token_a, content_type):
    response = post(
        client, body_of(tenant_a), headers=auth(tenant_a, token_a), content_type=content_type
    )

    assert response.status_code == 200, response.json()
    assert (response.json()["success"], response.json()["created"]) == (True, 1)


def test_invalid_json_is_answered_before_a_bad_init_data(client, tenant_a, token_a):
    response = post(client, "{", headers=auth(tenant_a, token_a), query="?initData=maybe")

    error_of(response, 400, "INVALID_JSON")


# --- 7. initData -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["maybe", "1", "yes", ""])
def test_init_data_not_true_or_false_answers_400(client, tenant_a, token_a, value):
    response = post(
        client, body_of(tenant_a), headers=auth(tenant_a, token_a), query=f"?initData={value}"
    )

    assert error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: initData"
    assert nothing_stored()
    assert_refusal_logged(tenant_a, response, status=400, error_code="MISSING_INFO")


@pytest.mark.parametrize(
    ("value", "expected"), [("TRUE", True), ("true", True), ("False", False), ("false", False)]
)
def test_init_data_is_read_in_any_case(client, tenant_a, token_a, value, expected):
    response = post(
        client, body_of(tenant_a), headers=auth(tenant_a, token_a), query=f"?initData={value}"
    )

    body = response.json()
    assert response.status_code == 200, body
    assert body["initData"] is expected
    assert logged(tenant_a, response).init_data is expected
    assert EntityRecord.objects.count() == 1


def test_bad_init_data_is_answered_before_bad_fields(client, tenant_a, token_a):
    response = post(client, {}, headers=auth(tenant_a, token_a), query="?initData=maybe")

    assert error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: initData"


# --- 8. fields missing, blank or of the wrong type ---------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"objectType": ..., "source": ...}, "Invalid value of: objectType, source"),
        ({"objectType": "", "source": "   "}, "Invalid value of: objectType, source"),
        ({"objectType": 5, "source": ["CRM"]}, "Invalid value of: objectType, source"),
        ({"objectType": None, "source": {"a": 1}}, "Invalid value of: objectType, source"),
        ({"source": "s" * 101}, "Invalid value of: source"),
        ({"entries": ...}, "Invalid value of: entries"),
        ({"entries": []}, "Invalid value of: entries"),
        ({"entries": {}}, "Invalid value of: entries"),
        ({"entries": {"refId": "R-1"}}, "Invalid value of: entries"),
        ({"entries": "R-1"}, "Invalid value of: entries"),
        ({"entries": None}, "Invalid value of: entries"),
        ({"ignoredUpdateCfs": "customField01"}, "Invalid value of: ignoredUpdateCfs"),
        ({"ignoredUpdateCfs": ["customField01", 1]}, "Invalid value of: ignoredUpdateCfs"),
        ({"ignoredUpdateCfs": [None]}, "Invalid value of: ignoredUpdateCfs"),
        ({"ignoredUpdateCfs": {"customField01": True}}, "Invalid value of: ignoredUpdateCfs"),
        ({"jeConfigId": 123}, "Invalid value of: jeConfigId"),
        ({"jeConfigId": ["x"]}, "Invalid value of: jeConfigId"),
        ({"jeEventKey": True}, "Invalid value of: jeEventKey"),
        (
            {
                "objectType": ...,
                "source": 1,
                "jeConfigId": 5,
                "jeEventKey": [],
                "entries": [],
                "ignoredUpdateCfs": [None],
            },
            "Invalid value of: objectType, source, jeConfigId, jeEventKey, entries, "
            "ignoredUpdateCfs",
        ),
        (
            {"source": "", "entries": {}, "ignoredUpdateCfs": "x"},
            "Invalid value of: source, entries, ignoredUpdateCfs",
        ),
    ],
    ids=[
        "missing-both",
        "blank-both",
        "wrong-types",
        "null-and-object",
        "source-too-long",
        "entries-missing",
        "entries-empty",
        "entries-object",
        "entries-single-entry-object",
        "entries-string",
        "entries-null",
        "ignored-string",
        "ignored-not-all-strings",
        "ignored-null-item",
        "ignored-object",
        "config-id-number",
        "config-id-list",
        "event-key-bool",
        "every-field-bad",
        "three-bad",
    ],
)
def test_bad_fields_answer_400_naming_each_in_body_order(
    client, tenant_a, token_a, overrides, message
):
    response = post(client, body_of(tenant_a, **overrides), headers=auth(tenant_a, token_a))

    assert error_of(response, 400, "MISSING_INFO")["message"] == message
    assert nothing_stored()
    row = assert_refusal_logged(tenant_a, response, status=400, error_code="MISSING_INFO")
    assert row.object_type == ""


def test_bad_fields_are_named_in_the_documented_order_whatever_order_they_are_sent(
    client, tenant_a, token_a
):
    # Missing fields have no place in the sent body, so "body order" is the order of the
    # body in DESIGN §6; a client that sends its keys in another order gets the same message.
    sent = {"ignoredUpdateCfs": 7, "entries": [], "source": "", "objectType": None}

    response = post(client, sent, headers=auth(tenant_a, token_a))

    assert error_of(response, 400, "MISSING_INFO")["message"] == (
        "Invalid value of: objectType, source, entries, ignoredUpdateCfs"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"jeConfigId": ..., "jeEventKey": ..., "ignoredUpdateCfs": ...},
        {"jeConfigId": None, "jeEventKey": None, "ignoredUpdateCfs": None},
        {"jeConfigId": "", "jeEventKey": "  "},
        {"objectType": "  custom-model ", "source": " CRM "},
    ],
    ids=["optional-absent", "optional-null", "blank-config-names-none", "padded-text"],
)
def test_optional_fields_absent_null_or_blank_are_accepted(client, tenant_a, token_a, overrides):
    response = post(client, body_of(tenant_a, **overrides), headers=auth(tenant_a, token_a))

    body = response.json()
    assert response.status_code == 200, body
    assert body["objectType"] == "custom-model"
    assert EntityRecord.objects.get().source == "CRM"
    assert logged(tenant_a, response).source == "CRM"


# --- 9. too many entries -----------------------------------------------------------------


def test_51_entries_answer_400_naming_the_limit(client, tenant_a, token_a):
    entries = [entry(tenant_a, f"R-{i}") for i in range(51)]

    response = post(client, body_of(tenant_a, entries=entries), headers=auth(tenant_a, token_a))

    body = error_of(response, 400, "ENTRIES_LIMIT_EXCEEDED")
    assert "50" in body["message"], body
    assert nothing_stored()
    assert_refusal_logged(tenant_a, response, status=400, error_code="ENTRIES_LIMIT_EXCEEDED")


def test_50_entries_are_accepted(client, tenant_a, token_a):
    entries = [entry(tenant_a, f"R-{i}") for i in range(50)]

    response = post(client, body_of(tenant_a, entries=entries), headers=auth(tenant_a, token_a))

    body = response.json()
    assert response.status_code == 200, body
    assert (body["total"], body["created"]) == (50, 50)
    assert EntityRecord.objects.filter(organization=tenant_a.organization).count() == 50


def test_entries_limit_comes_from_the_setting(client, tenant_a, token_a, settings):
    settings.CDP_INGEST_MAX_ENTRIES = 2
    entries = [entry(tenant_a, f"R-{i}") for i in range(3)]

    response = post(client, body_of(tenant_a, entries=entries), headers=auth(tenant_a, token_a))

    assert "2" in error_of(response, 400, "ENTRIES_LIMIT_EXCEEDED")["message"]


def test_too_many_entries_is_answered_before_an_unknown_object_type(client, tenant_a, token_a):
    entries = [{"orderId": f"O-{i}"} for i in range(51)]

    response = post(
        client,
        body_of(tenant_a, objectType="nope", entries=entries),
        headers=auth(tenant_a, token_a),
    )

    error_of(response, 400, "ENTRIES_LIMIT_EXCEEDED")


# --- 10. unknown objectType --------------------------------------------------------------


@pytest.mark.parametrize("object_type", ["membership", "Custom-Model", "orders", "x" * 80])
def test_unknown_object_type_answers_400_naming_it(client, tenant_a, token_a, object_type):
    response = post(
        client,
        body_of(tenant_a, objectType=object_type, entries=[{"refId": "R-1"}]),
        headers=auth(tenant_a, token_a),
    )

    body = error_of(response, 400, "INVALID_OBJECT_TYPE")
    assert object_type in body["message"], body
    assert nothing_stored()
    row = assert_refusal_logged(tenant_a, response, status=400, error_code="INVALID_OBJECT_TYPE")
    assert object_type.startswith(row.object_type)
    assert row.source == "CRM"


def test_unknown_object_type_is_answered_before_an_unknown_config(client, tenant_a, token_a):
    response = post(
        client,
        body_of(tenant_a, objectType="nope", jeConfigId="no-such-config"),
        headers=auth(tenant_a, token_a),
    )

    error_of(response, 400, "INVALID_OBJECT_TYPE")


# --- 11. unknown jeConfigId (the journeys' checks are tested with the journeys) ----------


def test_unknown_je_config_id_answers_400(client, tenant_a, token_a):
    config_id = f"{tenant_a.group_key}-Created-AAAAAAAAAAAAAAA"

    response = post(
        client, body_of(tenant_a, jeConfigId=config_id), headers=auth(tenant_a, token_a)
    )

    body = error_of(response, 400, "INVALID_JOURNEY_EVENT")
    assert config_id in body["message"], body
    assert nothing_stored()
    row = assert_refusal_logged(tenant_a, response, status=400, error_code="INVALID_JOURNEY_EVENT")
    assert row.object_type == "custom-model"
    assert row.config is None


def test_unknown_je_config_id_is_answered_before_bad_ignored_fields(client, tenant_a, token_a):
    response = post(
        client,
        body_of(tenant_a, jeConfigId="no-such-config", ignoredUpdateCfs=["refId"]),
        headers=auth(tenant_a, token_a),
    )

    error_of(response, 400, "INVALID_JOURNEY_EVENT")


# --- 13. ignoredUpdateCfs naming no custom field of the models ---------------------------


def _other_model(tenant, name: str = "Loyalty", field: str = "customField09"):
    model = services.custom_model_create(organization=tenant.organization, name=name)
    services.field_definition_create(organization=tenant.organization, data_model=model, name=field)
    return model


@pytest.mark.parametrize(
    "ignored",
    [
        ["refId"],  # a built-in field, not a custom one
        ["customerId"],
        ["customField55"],  # a valid name that the model does not declare
        ["customField01", "nope"],
        ["customField09"],  # a custom field of another model of the organization
    ],
)
def test_ignored_fields_not_custom_fields_of_the_entries_models_answer_400(
    client, tenant_a, token_a, ignored
):
    _other_model(tenant_a)

    response = post(
        client, body_of(tenant_a, ignoredUpdateCfs=ignored), headers=auth(tenant_a, token_a)
    )

    assert (
        error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: ignoredUpdateCfs"
    )
    assert nothing_stored()
    row = assert_refusal_logged(tenant_a, response, status=400, error_code="MISSING_INFO")
    assert row.object_type == "custom-model"


def test_ignored_fields_of_any_model_the_entries_name_are_accepted(client, tenant_a, token_a):
    other = _other_model(tenant_a)
    entries = [entry(tenant_a, "R-1"), {"momCode": other.mom_code, "refId": "L-1"}]

    response = post(
        client,
        body_of(tenant_a, entries=entries, ignoredUpdateCfs=["customField01", "customField09"]),
        headers=auth(tenant_a, token_a),
    )

    body = response.json()
    assert response.status_code == 200, body
    assert body["created"] == 2


def test_ignored_field_declared_only_by_tenant_b_answers_400(client, tenant_a, token_a, tenant_b):
    services.field_definition_create(
        organization=tenant_b.organization, data_model=tenant_b.model, name="customField03"
    )

    response = post(
        client,
        body_of(tenant_a, ignoredUpdateCfs=["customField03"]),
        headers=auth(tenant_a, token_a),
    )

    assert (
        error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: ignoredUpdateCfs"
    )


def test_ignored_field_of_a_custom_model_on_a_system_object_type_answers_400(
    client, tenant_a, token_a
):
    entries = [{"customerId": "C-1", "phone": "0900000001", "fullName": "An Nguyen"}]

    response = post(
        client,
        body_of(
            tenant_a,
            objectType="customer-identity",
            entries=entries,
            ignoredUpdateCfs=["customField01"],
        ),
        headers=auth(tenant_a, token_a),
    )

    assert (
        error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: ignoredUpdateCfs"
    )
    assert nothing_stored()


# --- 14. every entry rejected ------------------------------------------------------------


def test_every_entry_rejected_answers_400_with_the_full_body(client, tenant_a, token_a, tenant_b):
    entries = [
        {"refId": "R-1"},  # no momCode
        entry(tenant_a, "R-2", customFieldLongs={"customFieldLong01": "many"}),
    ]

    response = post(client, body_of(tenant_a, entries=entries), headers=auth(tenant_a, token_a))

    body = response.json()
    assert response.status_code == 400, body
    assert set(body) == ERROR_KEYS | INGEST_BODY_KEYS
    assert body["success"] is False
    assert body["errorCode"] == "INVALID_ENTRIES"
    assert body["message"] == "2 of 2 entries rejected"
    assert body["requestId"] == response["X-Request-Id"]
    assert body["objectType"] == "custom-model"
    assert body["initData"] is False
    assert (
        body["total"],
        body["created"],
        body["updated"],
        body["unchanged"],
        body["failed"],
    ) == (2, 0, 0, 0, 2)
    assert body["events"] == {"generated": 0, "suppressed": 0, "dropped": 0}
    assert body["warnings"] == []
    assert [set(r) for r in body["results"]] == [{"index", "refId", "status", "errorMessage"}] * 2
    assert [(r["index"], r["refId"], r["status"]) for r in body["results"]] == [
        (0, "R-1", 101),
        (1, "R-2", 101),
    ]
    assert body["results"][0]["errorMessage"] == "Missing momCode"
    assert "customFieldLong01" in body["results"][1]["errorMessage"]
    assert nothing_stored()

    row = logged(tenant_a, response)
    assert (row.status, row.error_code, row.message) == (400, "INVALID_ENTRIES", body["message"])
    assert (row.object_type, row.source) == ("custom-model", "CRM")
    assert (row.total, row.created, row.updated, row.unchanged, row.failed) == (2, 0, 0, 0, 2)
    assert row.results == body["results"]
    assert not IngestionRequest.objects.filter(organization=tenant_b.organization).exists()


def test_entries_that_are_not_objects_are_rejected_one_by_one(client, tenant_a, token_a):
    response = post(
        client, body_of(tenant_a, entries=[None, 1, "R-1", []]), headers=auth(tenant_a, token_a)
    )

    body = response.json()
    assert response.status_code == 400, body
    assert body["errorCode"] == "INVALID_ENTRIES"
    assert body["message"] == "4 of 4 entries rejected"
    assert [r["status"] for r in body["results"]] == [101] * 4


def test_some_entries_rejected_answers_200_counting_them(client, tenant_a, token_a):
    entries = [entry(tenant_a, "R-1"), {"refId": "R-2"}]

    response = post(client, body_of(tenant_a, entries=entries), headers=auth(tenant_a, token_a))

    body = response.json()
    assert response.status_code == 200, body
    assert (body["success"], body["errorCode"]) == (False, "INVALID_ENTRIES")
    assert body["message"] == "1 of 2 entries rejected"
    assert (body["created"], body["failed"]) == (1, 1)
    assert [r["status"] for r in body["results"]] == [200, 101]
    assert EntityRecord.objects.get().key == "R-1"
    row = logged(tenant_a, response)
    assert (row.status, row.error_code, row.created, row.failed) == (200, "INVALID_ENTRIES", 1, 1)


# --- order of the checks, and what every answer has in common ----------------------------


def test_bad_token_and_bad_body_answers_401(client, tenant_a, token_a):
    response = post(client, "{not json", headers={"TOKEN": "nope", "API_KEY": tenant_a.raw_key})

    assert error_of(response, 401, "UNAUTHORIZED")["message"] == "Invalid token or API key"
    assert not IngestionRequest.objects.exists()


def test_missing_headers_and_too_large_body_answers_401(client, tenant_a, settings):
    settings.CDP_INGEST_MAX_BODY_BYTES = 10

    response = post(client, body_of(tenant_a), headers={})

    error_of(response, 401, "UNAUTHORIZED")


def test_too_large_and_bad_fields_answers_413(client, tenant_a, token_a, settings):
    settings.CDP_INGEST_MAX_BODY_BYTES = 50
    bad = {"objectType": "", "source": "", "entries": [], "pad": "x" * 100}

    response = post(client, bad, headers=auth(tenant_a, token_a), query="?initData=maybe")

    error_of(response, 413, "PAYLOAD_TOO_LARGE")


def test_bad_fields_are_answered_before_too_many_entries(client, tenant_a, token_a):
    entries = [entry(tenant_a, f"R-{i}") for i in range(51)]

    response = post(
        client, body_of(tenant_a, source="", entries=entries), headers=auth(tenant_a, token_a)
    )

    assert error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: source"


ODD_BODIES = [
    {},
    {"objectType": {}, "source": {}, "entries": [{}], "ignoredUpdateCfs": []},
    {"objectType": "custom-model", "source": "CRM", "entries": [{"momCode": 5, "refId": {}}]},
    {"objectType": "custom-model", "source": "CRM", "entries": [{"momCode": ["M"]}]},
    {"objectType": "order", "source": "CRM", "entries": [{"orderId": "O-1", "items": "x"}]},
    {"objectType": "user-event", "source": "CRM", "entries": [{"eventAt": "yesterday"}]},
    {"objectType": "custom-model", "source": "CRM", "entries": [{"customFieldTexts": []}]},
    {"objectType": "custom-model", "source": "CRM", "entries": [[]], "ignoredUpdateCfs": []},
    {"objectType": "custom-model", "source": "CRM", "entries": [{"refId": 10**400}]},
]


@pytest.mark.parametrize("data", ODD_BODIES, ids=[str(i) for i in range(len(ODD_BODIES))])
def test_no_odd_body_answers_500(client, tenant_a, token_a, data):
    client.raise_request_exception = False

    response = post(client, data, headers=auth(tenant_a, token_a))

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False
    assert body["errorCode"] in {"MISSING_INFO", "INVALID_ENTRIES", "INVALID_JSON"}
    assert body["requestId"] == response["X-Request-Id"]
    assert logged(tenant_a, response).status == 400


def test_get_on_ingest_answers_405_with_the_error_body(client, tenant_a, token_a):
    response = client.get(URL, headers=auth(tenant_a, token_a))

    body = error_of(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in body["message"]
    assert nothing_stored()


def test_every_request_id_is_distinct(client, tenant_a, token_a):
    ids = {post(client, "{", headers=auth(tenant_a, token_a)).json()["requestId"] for _ in range(3)}

    assert len(ids) == 3
    assert set(IngestionRequest.objects.values_list("request_id", flat=True)) == ids
