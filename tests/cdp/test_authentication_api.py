"""POST /api/accounts/authen: every row of DESIGN §5, with two organizations."""

from __future__ import annotations

import hashlib
import re
import time
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model

from cdp import keys, ratelimit, services
from cdp.models import AuthToken

URL = "/api/accounts/authen"
REQUEST_ID_RE = re.compile(r"\A[0-9a-f]{32}\Z")
INVALID_CREDENTIALS = {
    "success": False,
    "errorCode": "UNAUTHORIZED",
    "message": "Invalid credentials",
}


def credentials(tenant, **overrides) -> dict:
    body = {"username": tenant.username, "apiKey": tenant.raw_key, "cdpGKey": tenant.group_key}
    body.update(overrides)
    return body


def post(client, body, **extra):
    return client.post(URL, body, format="json", **extra)


def error_of(response, status: int) -> dict:
    """The error body, after checking its shape and that it carries the X-Request-Id."""
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"success", "errorCode", "message", "requestId"}, body
    assert body["success"] is False
    assert REQUEST_ID_RE.match(response["X-Request-Id"])
    assert body["requestId"] == response["X-Request-Id"]
    return body


# --- 200 -------------------------------------------------------------------------------


def test_valid_credentials_return_a_30_minute_token(client, tenant_a, tenant_b):
    before_ms = int(time.time() * 1000)
    response = post(client, credentials(tenant_a))
    after_ms = int(time.time() * 1000)

    body = response.json()
    assert response.status_code == 200, body
    assert set(body) == {
        "success",
        "status",
        "token",
        "issuedAt",
        "expiredAt",
        "expiredAfter",
    }
    assert body["success"] is True
    assert body["status"] == "authenticated"
    assert isinstance(body["token"], str) and len(body["token"]) >= 32
    assert before_ms - 1 <= body["issuedAt"] <= after_ms + 1
    assert body["expiredAfter"] == 1800
    assert body["expiredAt"] - body["issuedAt"] == 1_800_000
    assert REQUEST_ID_RE.match(response["X-Request-Id"])

    # One token row, in tenant A, holding the digest and never the raw token.
    token = AuthToken.objects.get()
    assert token.organization == tenant_a.organization
    assert token.api_key == tenant_a.api_key
    assert token.digest == hashlib.sha256(body["token"].encode()).hexdigest()
    assert body["token"] not in token.digest
    assert int(token.expires_at.timestamp() * 1000) == body["expiredAt"]
    assert not AuthToken.objects.filter(organization=tenant_b.organization).exists()
    tenant_a.api_key.refresh_from_db()
    assert tenant_a.api_key.last_used_at == token.issued_at


def test_issued_token_verifies_against_the_key_it_was_issued_for(client, tenant_a, tenant_b):
    token = post(client, credentials(tenant_a)).json()["token"]

    api_key = services.token_verify(raw_token=token, raw_api_key=tenant_a.raw_key)

    assert api_key.pk == tenant_a.api_key.pk
    assert api_key.organization == tenant_a.organization
    with pytest.raises(services.TokenInvalid):
        services.token_verify(raw_token=token, raw_api_key=tenant_b.raw_key)


def test_each_login_issues_a_new_token(client, tenant_a):
    first = post(client, credentials(tenant_a)).json()["token"]
    second = post(client, credentials(tenant_a)).json()["token"]

    assert first != second
    assert AuthToken.objects.filter(api_key=tenant_a.api_key).count() == 2


def test_token_lifetime_follows_the_setting(client, tenant_a, settings):
    settings.CDP_TOKEN_TTL_SECONDS = 600

    body = post(client, credentials(tenant_a)).json()

    assert body["expiredAfter"] == 600
    assert body["expiredAt"] - body["issuedAt"] == 600_000


# --- 400 MISSING_INFO ------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"username": None}, id="username-null"),
        pytest.param({"username": ""}, id="username-empty"),
        pytest.param({"username": "   "}, id="username-blank"),
        pytest.param({"username": 12345}, id="username-number"),
        pytest.param({"username": ["ops@acme.test"]}, id="username-list"),
        pytest.param({"apiKey": None}, id="apikey-null"),
        pytest.param({"apiKey": ""}, id="apikey-empty"),
        pytest.param({"apiKey": " \t "}, id="apikey-blank"),
        pytest.param({"apiKey": 1234567890}, id="apikey-number"),
        pytest.param({"apiKey": {"key": "x"}}, id="apikey-object"),
        # Both checks fail: the username/apiKey message comes first.
        pytest.param({"apiKey": "", "cdpGKey": ""}, id="apikey-and-gkey-empty"),
    ],
)
def test_missing_or_blank_username_or_api_key_is_missing_info(client, tenant_a, overrides):
    body = error_of(post(client, credentials(tenant_a, **overrides)), 400)

    assert body["errorCode"] == "MISSING_INFO"
    assert body["message"] == "Username and ApiKey are required"
    assert AuthToken.objects.count() == 0


@pytest.mark.parametrize("absent", ["username", "apiKey"])
def test_absent_username_or_api_key_is_missing_info(client, tenant_a, absent):
    payload = credentials(tenant_a)
    del payload[absent]

    body = error_of(post(client, payload), 400)

    assert body["errorCode"] == "MISSING_INFO"
    assert body["message"] == "Username and ApiKey are required"
    assert AuthToken.objects.count() == 0


def test_empty_object_is_missing_info_about_username_and_api_key(client, tenant_a):
    body = error_of(post(client, {}), 400)

    assert (body["errorCode"], body["message"]) == (
        "MISSING_INFO",
        "Username and ApiKey are required",
    )


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"cdpGKey": None}, id="null"),
        pytest.param({"cdpGKey": ""}, id="empty"),
        pytest.param({"cdpGKey": "   "}, id="blank"),
        pytest.param({"cdpGKey": 42}, id="number"),
    ],
)
def test_missing_or_blank_group_key_is_missing_organization_context(client, tenant_a, overrides):
    body = error_of(post(client, credentials(tenant_a, **overrides)), 400)

    assert body["errorCode"] == "MISSING_INFO"
    assert body["message"] == "Organization Context is not set"
    assert AuthToken.objects.count() == 0


def test_absent_group_key_is_missing_organization_context(client, tenant_a):
    payload = credentials(tenant_a)
    del payload["cdpGKey"]

    body = error_of(post(client, payload), 400)

    assert (body["errorCode"], body["message"]) == (
        "MISSING_INFO",
        "Organization Context is not set",
    )
    assert AuthToken.objects.count() == 0


# --- 401 UNAUTHORIZED ------------------------------------------------------------------


def _deactivate_user(a, b):
    get_user_model().objects.filter(pk=a.user.pk).update(is_active=False)


def _deactivate_organization(a, b):
    a.organization.__class__.objects.filter(pk=a.organization.pk).update(is_active=False)


def _revoke_key(a, b):
    services.api_key_revoke(organization=a.organization, api_key_id=a.api_key.pk)


# Each case: (how to change the world, the body to send). Every one names tenant A's
# active user, key or group key somewhere, so only the combination is wrong.
WRONG_CREDENTIALS = {
    "wrong-key": (None, lambda a, b: credentials(a, apiKey=keys.api_key_generate())),
    "wrong-key-same-prefix": (
        None,
        lambda a, b: credentials(a, apiKey=a.raw_key[:8] + "0" * 32),
    ),
    "wrong-username": (None, lambda a, b: credentials(a, username="nobody@acme.test")),
    "wrong-group-key": (None, lambda a, b: credentials(a, cdpGKey="0" * 32)),
    "key-of-b-with-group-key-of-a": (None, lambda a, b: credentials(a, apiKey=b.raw_key)),
    "user-of-b-with-key-of-a": (None, lambda a, b: credentials(a, username=b.username)),
    "user-and-key-of-a-with-group-key-of-b": (
        None,
        lambda a, b: credentials(a, cdpGKey=b.group_key),
    ),
    "user-of-b-key-of-a-group-key-of-b": (
        None,
        lambda a, b: credentials(b, apiKey=a.raw_key),
    ),
    "revoked-key": (_revoke_key, lambda a, b: credentials(a)),
    "inactive-user": (_deactivate_user, lambda a, b: credentials(a)),
    "inactive-organization": (_deactivate_organization, lambda a, b: credentials(a)),
}


@pytest.mark.parametrize("case", list(WRONG_CREDENTIALS))
def test_wrong_combination_is_unauthorized_invalid_credentials(client, tenant_a, tenant_b, case):
    change, make_body = WRONG_CREDENTIALS[case]
    if change is not None:
        change(tenant_a, tenant_b)

    body = error_of(post(client, make_body(tenant_a, tenant_b)), 401)

    assert {k: v for k, v in body.items() if k != "requestId"} == INVALID_CREDENTIALS
    assert AuthToken.objects.count() == 0


def test_every_wrong_combination_gets_the_same_answer(client, tenant_a, tenant_b, settings):
    settings.CDP_AUTHEN_RATE_LIMITS = [(1000, 60)]
    answers = []
    request_ids = set()
    # Cases that change the world go last, so the earlier ones run against a healthy tenant.
    ordered = sorted(WRONG_CREDENTIALS.values(), key=lambda case: case[0] is not None)
    for change, make_body in ordered:
        if change is not None:
            change(tenant_a, tenant_b)
        response = post(client, make_body(tenant_a, tenant_b))
        body = error_of(response, 401)
        request_ids.add(body.pop("requestId"))
        headers = sorted(
            name.lower()
            for name in response.headers
            if name.lower() not in {"x-request-id", "content-length"}
        )
        answers.append((response.status_code, body, headers))

    assert all(answer == answers[0] for answer in answers), answers
    assert answers[0][1] == INVALID_CREDENTIALS
    assert len(request_ids) == len(WRONG_CREDENTIALS)


# --- shape of every response -----------------------------------------------------------


def test_every_response_carries_a_fresh_request_id(client, tenant_a):
    responses = [
        post(client, credentials(tenant_a)),
        post(client, credentials(tenant_a, apiKey="")),
        post(client, credentials(tenant_a, apiKey=keys.api_key_generate())),
        client.get(URL),
    ]

    ids = [r["X-Request-Id"] for r in responses]
    assert all(REQUEST_ID_RE.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    for response in responses[1:]:
        assert response.json()["requestId"] == response["X-Request-Id"]


def test_other_methods_get_the_error_body(client, tenant_a):
    body = error_of(client.get(URL), 405)

    assert body["errorCode"] == "METHOD_NOT_ALLOWED"
    assert "GET" in body["message"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b'{"username": "ops@acme.test", ', "Body is not valid JSON", id="truncated"),
        pytest.param(b"not json", "Body is not valid JSON", id="text"),
        # As the ingest endpoint says it: one parser for both.
        pytest.param(b'{"username": "\xff\xfe"}', "Body is not valid UTF-8", id="not-utf8"),
    ],
)
def test_invalid_json_body_is_invalid_json(client, tenant_a, raw, message):
    response = client.post(URL, data=raw, content_type="application/json")

    body = error_of(response, 400)
    assert body["errorCode"] == "INVALID_JSON"
    assert body["message"].startswith(message)
    assert AuthToken.objects.count() == 0


def test_non_json_content_type_is_invalid_json(client, tenant_a):
    response = client.post(
        URL,
        data=f"username={tenant_a.username}&apiKey={tenant_a.raw_key}&cdpGKey={tenant_a.group_key}",
        content_type="application/x-www-form-urlencoded",
    )

    body = error_of(response, 400)
    assert body["errorCode"] == "INVALID_JSON"
    assert body["message"] == "Content-Type must be application/json"
    assert AuthToken.objects.count() == 0


# --- 429 RATE_LIMITED ------------------------------------------------------------------

# A fixed clock, 30 s into a minute, so no test crosses a window edge and Retry-After is
# known exactly.
FROZEN_NOW = 1_700_000_010.0


@pytest.fixture
def limit_of_three(settings, monkeypatch):
    settings.CDP_AUTHEN_RATE_LIMITS = [(3, 60)]
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: FROZEN_NOW))


def assert_rate_limited(response) -> None:
    body = error_of(response, 429)
    assert body["errorCode"] == "RATE_LIMITED"
    assert body["message"] == "Rate limit exceeded: 3 requests per minute of failed attempts"
    assert response["X-Rate-Limit-Retry-After-Seconds"] == "30"
    assert response["Retry-After"] == "30"


def test_failed_attempts_per_username_and_address_are_limited(
    client, tenant_a, tenant_b, limit_of_three
):
    for _ in range(3):
        response = post(
            client, credentials(tenant_a, apiKey=keys.api_key_generate()), REMOTE_ADDR="10.0.0.1"
        )
        assert error_of(response, 401)["message"] == "Invalid credentials"

    # A fourth wrong attempt for that username from that address is refused.
    assert_rate_limited(
        post(client, credentials(tenant_a, apiKey=keys.api_key_generate()), REMOTE_ADDR="10.0.0.1")
    )
    # Nobody can lock the user out: the right credentials from elsewhere get in.
    response = post(client, credentials(tenant_a), REMOTE_ADDR="10.0.0.9")
    assert response.status_code == 200, response.json()
    assert AuthToken.objects.filter(organization=tenant_a.organization).count() == 1
    # Another username from the same address is not affected by that username's window.
    assert post(client, credentials(tenant_b), REMOTE_ADDR="10.0.0.8").status_code == 200


def test_failures_for_a_username_from_many_addresses_do_not_lock_it_out(
    client, tenant_a, limit_of_three
):
    """The attack of the issue: ten failures a minute for a username, from any address,
    used to make that user's valid credentials answer 429."""
    for i in range(12):
        post(
            client,
            credentials(tenant_a, apiKey=keys.api_key_generate()),
            REMOTE_ADDR=f"10.7.0.{i + 1}",
        )

    response = post(client, credentials(tenant_a), REMOTE_ADDR="10.7.1.1")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "authenticated"


@pytest.mark.django_db(transaction=True)
def test_concurrent_failures_are_judged_against_the_limit_one_by_one(tenant_a, settings):
    """Counted first, then decided: of 24 concurrent wrong attempts from one address,
    exactly as many as the limit are looked at (401), the others refused (429)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection
    from rest_framework.test import APIClient

    settings.CDP_AUTHEN_RATE_LIMITS = [(10, 3600)]
    barrier = threading.Barrier(24)

    def attempt(_):
        try:
            barrier.wait(timeout=30)
            return post(
                APIClient(),
                credentials(tenant_a, apiKey=keys.api_key_generate()),
                REMOTE_ADDR="10.8.0.1",
            ).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(attempt, range(24), timeout=120))

    assert sorted(statuses) == [401] * 10 + [429] * 14


def test_failed_attempts_per_client_address_are_limited(client, tenant_a, tenant_b, limit_of_three):
    for i in range(3):
        response = post(
            client,
            credentials(tenant_a, username=f"guess{i}@acme.test"),
            REMOTE_ADDR="192.0.2.7",
        )
        assert error_of(response, 401)["message"] == "Invalid credentials"

    assert_rate_limited(post(client, credentials(tenant_b), REMOTE_ADDR="192.0.2.7"))
    assert AuthToken.objects.count() == 0

    # The same user from another address still gets in.
    response = post(client, credentials(tenant_b), REMOTE_ADDR="192.0.2.8")
    assert response.status_code == 200, response.json()
    assert AuthToken.objects.filter(organization=tenant_b.organization).count() == 1


def test_other_usernames_failures_elsewhere_do_not_block_a_login(
    client, tenant_a, tenant_b, limit_of_three
):
    for _ in range(5):
        post(client, credentials(tenant_a, apiKey=keys.api_key_generate()), REMOTE_ADDR="10.1.1.1")
    assert_rate_limited(
        post(client, credentials(tenant_a, apiKey=keys.api_key_generate()), REMOTE_ADDR="10.1.1.1")
    )

    response = post(client, credentials(tenant_b), REMOTE_ADDR="10.2.2.2")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "authenticated"
    assert AuthToken.objects.filter(organization=tenant_b.organization).count() == 1


def test_successful_logins_are_not_counted_as_failures(client, tenant_a, limit_of_three):
    for _ in range(6):
        response = post(client, credentials(tenant_a), REMOTE_ADDR="10.3.3.3")
        assert response.status_code == 200, response.json()

    assert AuthToken.objects.filter(api_key=tenant_a.api_key).count() == 6


def test_attempts_with_missing_info_are_not_counted(client, tenant_a, limit_of_three):
    for _ in range(5):
        assert (
            post(client, credentials(tenant_a, apiKey=""), REMOTE_ADDR="10.4.4.4").status_code
            == 400
        )

    assert post(client, credentials(tenant_a), REMOTE_ADDR="10.4.4.4").status_code == 200
