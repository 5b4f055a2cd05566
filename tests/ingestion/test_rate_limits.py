"""Per-API-key rate limits of the Data Ingestion API (DESIGN §6, check 4).

The windows are fixed, so the clock of `cdp.ratelimit` is frozen here (the `clock` fixture,
tests/ingestion/conftest.py): "within a second" then means the same one-second window,
whatever the machine's speed.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.core.cache import cache

from cdp import ratelimit, services
from cdp.models import EntityRecord
from cdp.shared_store import Counter, RedisStore, shared_store
from tests.conftest import authenticate

URL = "/dhub-i/api/v1.0/ingest"


@pytest.fixture
def small_windows(settings) -> None:
    settings.CDP_INGEST_RATE_LIMITS = [(3, 1), (5, 60)]


def post(client, tenant, token: str, ref_id: str = "R-1", raw_key: str | None = None):
    body = {
        "objectType": "custom-model",
        "source": "CRM",
        "entries": [{"momCode": tenant.mom_code, "refId": ref_id}],
    }
    return client.post(
        URL,
        data=json.dumps(body),
        content_type="application/json",
        headers={"TOKEN": token, "API_KEY": raw_key or tenant.raw_key},
    )


def send(client, tenant, token: str, count: int, raw_key: str | None = None) -> list[int]:
    return [
        post(client, tenant, token, f"R-{uuid.uuid4().hex[:8]}", raw_key).status_code
        for _ in range(count)
    ]


def counter_key(api_key, seconds: int, now: float) -> str:
    """The cache key of one window's counter (cdp.ratelimit's format)."""
    return f"rl:ingest:{api_key.pk}:{seconds}:{int(now // seconds)}"


def assert_rate_limited(response, window: str) -> int:
    """Checks the 429 body and headers; returns the retry-after seconds."""
    body = response.json()
    assert response.status_code == 429, body
    assert set(body) == {"success", "errorCode", "message", "requestId"}
    assert body["success"] is False
    assert body["errorCode"] == "RATE_LIMITED"
    assert window in body["message"], body
    assert body["requestId"] == response["X-Request-Id"]
    seconds = response["X-Rate-Limit-Retry-After-Seconds"]
    assert re.fullmatch(r"[0-9]+", seconds)
    assert response["Retry-After"] == seconds
    assert int(seconds) >= 1
    return int(seconds)


def second_key_token(client, tenant) -> tuple[object, str, str]:
    api_key, raw = services.api_key_create(membership=tenant.membership, name="second")
    response = client.post(
        "/api/accounts/authen",
        {"username": tenant.username, "apiKey": raw, "cdpGKey": tenant.group_key},
        format="json",
    )
    assert response.status_code == 200, response.json()
    return api_key, raw, response.json()["token"]


# --- the windows -------------------------------------------------------------------------


def test_default_windows_are_those_of_the_design(settings):
    windows = ratelimit.windows_from_setting(settings.CDP_INGEST_RATE_LIMITS)

    assert [(w.limit, w.seconds) for w in windows] == [
        (50, 1),
        (1_000, 60),
        (5_000, 300),
        (50_000, 3_600),
        (400_000, 86_400),
    ]
    assert [w.label for w in windows] == [
        "50 requests per second",
        "1000 requests per minute",
        "5000 requests per 5 minutes",
        "50000 requests per hour",
        "400000 requests per day",
    ]


def test_fourth_request_within_a_second_answers_429(
    client, tenant_a, token_a, small_windows, clock
):
    assert send(client, tenant_a, token_a, 3) == [200, 200, 200]

    response = post(client, tenant_a, token_a, "R-refused")

    retry_after = assert_rate_limited(response, "3 requests per second")
    assert retry_after == 1  # 0.2 s into the second: it frees in 0.8 s, rounded up
    assert EntityRecord.objects.count() == 3
    assert not EntityRecord.objects.filter(key="R-refused").exists()


def test_the_next_second_frees_the_one_second_window(
    client, tenant_a, token_a, small_windows, clock
):
    send(client, tenant_a, token_a, 3)
    assert post(client, tenant_a, token_a).status_code == 429

    clock.advance(1)

    assert send(client, tenant_a, token_a, 1) == [200]


def test_the_minute_window_names_itself_and_the_seconds_until_it_frees(
    client, tenant_a, token_a, small_windows, clock
):
    assert send(client, tenant_a, token_a, 3) == [200] * 3
    clock.advance(1)
    assert send(client, tenant_a, token_a, 2) == [200] * 2

    response = post(client, tenant_a, token_a)

    retry_after = assert_rate_limited(response, "5 requests per minute")
    assert retry_after == 59  # 1.2 s into the minute
    clock.advance(59)
    assert send(client, tenant_a, token_a, 1) == [200]


def test_refused_requests_are_not_counted_in_longer_windows(
    client, tenant_a, token_a, small_windows, clock
):
    send(client, tenant_a, token_a, 3)
    assert set(send(client, tenant_a, token_a, 10)) == {429}

    assert cache.get(counter_key(tenant_a.api_key, 60, clock.now)) == 3
    assert cache.get(counter_key(tenant_a.api_key, 1, clock.now)) == 3
    clock.advance(1)
    # Had the 10 refusals counted, the minute window would be full already.
    assert send(client, tenant_a, token_a, 2) == [200, 200]
    assert EntityRecord.objects.count() == 5


def test_every_authenticated_request_counts_even_a_refused_body(
    client, tenant_a, token_a, small_windows, clock
):
    for _ in range(3):
        response = client.post(
            URL,
            data="{",
            content_type="application/json",
            headers={"TOKEN": token_a, "API_KEY": tenant_a.raw_key},
        )
        assert response.json()["errorCode"] == "INVALID_JSON"

    assert_rate_limited(post(client, tenant_a, token_a), "3 requests per second")


def test_unauthenticated_requests_do_not_use_the_keys_budget(
    client, tenant_a, token_a, small_windows, clock
):
    for _ in range(10):
        response = post(client, tenant_a, "not-a-token")
        assert response.status_code == 401

    assert send(client, tenant_a, token_a, 3) == [200] * 3


def test_a_token_revoked_after_use_takes_its_count_back(
    client, tenant_a, token_a, small_windows, clock
):
    # The worker now knows which key the token is for, and counts before it sees the
    # token's entry; the refusal must not keep that count.
    assert send(client, tenant_a, token_a, 2) == [200, 200]
    services.api_key_revoke(organization=tenant_a.organization, api_key_id=tenant_a.api_key.pk)

    response = post(client, tenant_a, token_a)

    assert response.status_code == 401
    assert response.json()["message"] == "Invalid token or API key"
    assert cache.get(counter_key(tenant_a.api_key, 1, clock.now)) == 2


def test_rate_limit_is_checked_before_the_body(
    client, tenant_a, token_a, small_windows, clock, settings
):
    send(client, tenant_a, token_a, 3)
    settings.CDP_INGEST_MAX_BODY_BYTES = 10

    response = client.post(
        URL,
        data="{" + " " * 100,
        content_type="text/plain",
        headers={"TOKEN": token_a, "API_KEY": tenant_a.raw_key},
    )

    assert_rate_limited(response, "3 requests per second")


# --- per API key -------------------------------------------------------------------------


def test_limits_are_per_api_key_not_per_tenant_or_token(
    client, tenant_a, token_a, tenant_b, token_b, small_windows, clock
):
    send(client, tenant_a, token_a, 3)
    assert post(client, tenant_a, token_a).status_code == 429

    # Tenant B has its own budget.
    assert send(client, tenant_b, token_b, 3) == [200] * 3
    # So has a second key of tenant A.
    _key2, raw2, token2 = second_key_token(client, tenant_a)
    assert send(client, tenant_a, token2, 3, raw_key=raw2) == [200] * 3
    # A fresh token of the first key does not reset that key's count.
    fresh = authenticate(client, tenant_a)
    assert_rate_limited(post(client, tenant_a, fresh), "3 requests per second")

    assert EntityRecord.objects.filter(organization=tenant_a.organization).count() == 6
    assert EntityRecord.objects.filter(organization=tenant_b.organization).count() == 3


# --- the counters live in the cache ------------------------------------------------------


def test_counters_live_in_the_django_cache(client, tenant_a, token_a, small_windows, clock):
    send(client, tenant_a, token_a, 2)

    assert cache.get(counter_key(tenant_a.api_key, 1, clock.now)) == 2
    assert cache.get(counter_key(tenant_a.api_key, 60, clock.now)) == 2

    # Another worker's request, counted in the shared cache, counts here too.
    cache.incr(counter_key(tenant_a.api_key, 1, clock.now))
    assert_rate_limited(post(client, tenant_a, token_a), "3 requests per second")

    # And nothing but the cache holds the count.
    cache.clear()
    assert send(client, tenant_a, token_a, 1) == [200]
    assert cache.get(counter_key(tenant_a.api_key, 1, clock.now)) == 1


def test_separate_redis_clients_share_the_counters(
    client, tenant_a, token_a, small_windows, clock, shared_redis
):
    store = shared_store()
    assert isinstance(store, RedisStore)
    worker_1, worker_2 = shared_redis(), shared_redis()
    assert worker_1.client() is not worker_2.client()
    key = counter_key(tenant_a.api_key, 1, clock.now)

    assert send(client, tenant_a, token_a, 2) == [200, 200]

    # Both clients, each with its own connection pool, read the server's count.
    assert worker_1.get_many([key]) == [b"2"]
    assert worker_2.get_many([key]) == [b"2"]
    # A request counted by another worker fills the window for this one.
    assert worker_2.exchange(counters=[Counter(key, 2)])[1] == [3]
    assert worker_1.get_many([key]) == [b"3"]
    assert_rate_limited(post(client, tenant_a, token_a), "3 requests per second")
    assert worker_1.get_many([key]) == [b"3"]  # the refusal was taken back out


def test_redis_counters_expire_with_their_window(
    client, tenant_a, token_a, small_windows, clock, shared_redis
):
    assert send(client, tenant_a, token_a, 1) == [200]

    store = shared_store()
    raw = store.client()
    for seconds in (1, 60):
        name = store.key(counter_key(tenant_a.api_key, seconds, clock.now))
        assert raw.get(name) == b"1"
        assert 0 < raw.ttl(name) <= seconds + 1
