"""`Idempotency-Key` on the ingest endpoint: a retry with the same key and request is
answered the first answer, byte for byte, and writes nothing; another request with the
key answers 422; keys are per organization, expire, and concurrent duplicates are never
both processed. On both databases."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from cdp.callback_settings import callback_settings_set
from ingestion.models import CallbackDelivery, IdempotencyKey, IngestionRequest
from journeys.models import UserEvent
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.ingestion.conftest import INGEST_URL, Ingest, ingest_for

pytestmark = pytest.mark.django_db

KEY = "order-sync-2026-12-01T10:00:00Z#17"
REUSED = "Idempotency-Key was already used with a different request"


def _headers(api: Ingest, key: str | None = KEY) -> dict[str, str]:
    headers = {"TOKEN": api.token, "API_KEY": api.tenant.raw_key}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _row_counts() -> dict[str, int]:
    """Rows of every table of the product's apps."""
    return {
        model._meta.label: model.objects.count()
        for app in ("cdp", "ingestion", "journeys")
        for model in apps.get_app_config(app).get_models()
    }


def _post_raw(api: Ingest, body: bytes, *, key: str | None = KEY, query: str = ""):
    return api.client.post(
        INGEST_URL + query, data=body, content_type="application/json", headers=_headers(api, key)
    )


def _body(api: Ingest, entries: list, **fields) -> bytes:
    return json.dumps(
        {"objectType": "custom-model", "source": "CRM", "entries": entries, **fields}
    ).encode()


@pytest.fixture
def created_config(tenant_a):
    callback_settings_set(
        organization=tenant_a.organization, url="https://partner.example/cb", enabled=True
    )
    return journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Created",
        settings=UserEventSettings(event_name="member_joined", category="UserIdentity"),
    )


def test_a_retry_gets_the_same_bytes_and_status_and_writes_nothing(
    api_a, api_b, tenant_a, created_config
):
    body = _body(
        api_a,
        [api_a.entry("R-1", customerId="C-1", customField01="gold"), {"refId": "no-momCode"}],
        jeConfigId=created_config.config_id,
    )
    first = _post_raw(api_a, body)
    assert first.status_code == 200
    answer = first.json()
    assert (answer["created"], answer["failed"], answer["events"]["generated"]) == (1, 1, 1)
    assert "Idempotent-Replayed" not in first.headers
    before = _row_counts()

    retry = _post_raw(api_a, body)

    assert retry.status_code == 200
    assert retry.content == first.content
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.headers["X-Request-Id"] == answer["requestId"] == first.headers["X-Request-Id"]
    # Nothing written: no record, event, log row, callback or key; only the replay is
    # counted on the original request's log row.
    assert _row_counts() == before
    logged = IngestionRequest.objects.get(request_id=answer["requestId"])
    assert (logged.idempotency_key, logged.replays) == (KEY, 1)
    assert logged.last_replayed_at is not None
    assert UserEvent.objects.filter(organization=tenant_a.organization).count() == 1
    assert CallbackDelivery.objects.filter(organization=tenant_a.organization).count() == 1
    # And a third time.
    assert _post_raw(api_a, body).content == first.content
    assert IngestionRequest.objects.get(request_id=answer["requestId"]).replays == 2
    assert not IngestionRequest.objects.filter(organization=api_b.tenant.organization).exists()


def test_an_all_rejected_answer_is_stored_and_replayed_too(api_a):
    body = _body(api_a, [{"refId": "X-1"}, {"refId": "X-2"}])
    first = _post_raw(api_a, body)
    assert (first.status_code, first.json()["errorCode"]) == (400, "INVALID_ENTRIES")
    before = _row_counts()

    retry = _post_raw(api_a, body)

    assert (retry.status_code, retry.content) == (400, first.content)
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert _row_counts() == before


def test_a_user_event_retry_stores_no_second_changed_event(api_a, tenant_a):
    entry = {
        "source": "PurchaseOrder",
        "sourceId": "PO-1",
        "channel": "Online",
        "eventCtg": "Transaction",
        "eventName": "purchase",
        "condition": "Changed",
        "eventAt": 1_700_000_000_000,
    }
    body = json.dumps({"objectType": "user-event", "source": "Shop", "entries": [entry]}).encode()
    first = _post_raw(api_a, body)
    retry = _post_raw(api_a, body)

    assert first.json()["created"] == 1
    assert retry.content == first.content
    assert UserEvent.objects.filter(organization=tenant_a.organization).count() == 1


def test_the_same_key_with_another_body_or_init_data_answers_422(api_a):
    first = _post_raw(api_a, _body(api_a, [api_a.entry("R-1", customField01="gold")]))
    assert first.status_code == 200
    before = api_a.data("R-1")

    other_body = _post_raw(api_a, _body(api_a, [api_a.entry("R-1", customField01="silver")]))
    other_flag = _post_raw(
        api_a, _body(api_a, [api_a.entry("R-1", customField01="gold")]), query="?initData=true"
    )
    # Even a body the checks would refuse: the key is looked up as soon as it is read.
    unknown_type = _post_raw(
        api_a, json.dumps({"objectType": "nope", "source": "CRM", "entries": [{}]}).encode()
    )

    for response in (other_body, other_flag, unknown_type):
        assert response.status_code == 422
        assert response.json() == {
            "success": False,
            "errorCode": "IDEMPOTENCY_KEY_REUSED",
            "message": REUSED,
            "requestId": response.headers["X-Request-Id"],
        }
        assert "Idempotent-Replayed" not in response.headers
    assert api_a.data("R-1") == before
    assert before["customField01"] == "gold"
    # The refusals are in the log, with the key; the original was not replayed.
    refusals = api_a.log().filter(error_code="IDEMPOTENCY_KEY_REUSED")
    assert refusals.count() == 3
    assert set(refusals.values_list("idempotency_key", flat=True)) == {KEY}
    assert api_a.log().get(request_id=first.json()["requestId"]).replays == 0


def test_keys_are_scoped_to_the_organization(api_a, api_b):
    body_a = _body(api_a, [api_a.entry("R-1", customField01="a")])
    body_b = _body(api_b, [api_b.entry("R-1", customField01="b")])
    first_a = _post_raw(api_a, body_a)

    first_b = _post_raw(api_b, body_b)  # the same key, in another organization
    retry_a = _post_raw(api_a, body_a)

    assert first_b.status_code == 200
    assert "Idempotent-Replayed" not in first_b.headers
    assert first_b.json()["created"] == 1
    assert first_b.json()["requestId"] != first_a.json()["requestId"]
    assert retry_a.content == first_a.content
    assert api_a.data("R-1")["customField01"] == "a"
    assert api_b.data("R-1")["customField01"] == "b"
    assert IdempotencyKey.objects.filter(key=KEY).count() == 2


@pytest.mark.parametrize(
    "key",
    ["", "has space", "x" * 256, "naïve", "tab\there"],
    ids=["empty", "space", "too-long", "non-ascii", "control"],
)
def test_an_invalid_key_is_refused_before_the_body_is_looked_at(api_a, key):
    # The body is over the size limit and not JSON: the key's check comes first.
    response = _post_raw(api_a, b"{" * (1024 * 1024 + 10), key=key)

    assert response.status_code == 400
    assert response.json()["errorCode"] == "MISSING_INFO"
    assert response.json()["message"] == "Invalid value of: Idempotency-Key"
    assert not IdempotencyKey.objects.exists()
    assert api_a.log().get().error_code == "MISSING_INFO"


def test_the_longest_visible_ascii_key_is_accepted(api_a):
    key = "".join(chr(c) for c in range(0x21, 0x7F)) * 3  # 282 characters
    key = key[:255]
    response = _post_raw(api_a, _body(api_a, [api_a.entry("R-1")]), key=key)

    assert response.status_code == 200
    assert IdempotencyKey.objects.get().key == key


def test_authentication_is_checked_before_the_key(api_a):
    response = api_a.client.post(
        INGEST_URL, data=b"{}", content_type="application/json", headers={"Idempotency-Key": ""}
    )
    assert (response.status_code, response.json()["errorCode"]) == (401, "UNAUTHORIZED")


def test_a_refused_request_stores_nothing_so_the_corrected_one_may_reuse_the_key(api_a):
    refused = _post_raw(
        api_a, json.dumps({"objectType": "custom-model", "source": "", "entries": []}).encode()
    )
    assert (refused.status_code, refused.json()["message"]) == (
        400,
        "Invalid value of: source, entries",
    )
    assert not IdempotencyKey.objects.exists()

    corrected = _post_raw(api_a, _body(api_a, [api_a.entry("R-1")]))
    retry = _post_raw(api_a, _body(api_a, [api_a.entry("R-1")]))

    assert corrected.json()["created"] == 1
    assert "Idempotent-Replayed" not in corrected.headers
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.content == corrected.content


def test_without_the_header_every_request_is_processed(api_a):
    body = _body(api_a, [api_a.entry("R-1", customField01="gold")])
    answers = [_post_raw(api_a, body, key=None).json() for _ in range(2)]

    assert [(a["created"], a["unchanged"]) for a in answers] == [(1, 0), (0, 1)]
    assert not IdempotencyKey.objects.exists()
    assert api_a.log().count() == 2


def test_the_answer_is_kept_for_the_ttl_then_the_key_is_free(api_a, settings):
    settings.CDP_IDEMPOTENCY_KEY_TTL_SECONDS = 3600
    body = _body(api_a, [api_a.entry("R-1", customField01="gold")])
    first = _post_raw(api_a, body)
    stored = IdempotencyKey.objects.get()
    assert stored.expires_at - stored.created_at == timedelta(seconds=3600)
    assert (stored.request_id, stored.status) == (first.json()["requestId"], 200)
    assert stored.body.encode() == first.content

    # Expired (the purge has not run yet): the request is processed anew, and its answer
    # replaces the old one.
    IdempotencyKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    again = _post_raw(api_a, body)

    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["unchanged"] == 1
    renewed = IdempotencyKey.objects.get()
    assert renewed.request_id == again.json()["requestId"] != first.json()["requestId"]
    assert renewed.expires_at > timezone.now()


def test_purge_deletes_only_expired_keys_of_every_organization(api_a, api_b):
    _post_raw(api_a, _body(api_a, [api_a.entry("R-1")]), key="old-a")
    _post_raw(api_b, _body(api_b, [api_b.entry("R-1")]), key="old-b")
    _post_raw(api_a, _body(api_a, [api_a.entry("R-2")]), key="live-a")
    IdempotencyKey.objects.filter(key__startswith="old").update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    out = StringIO()

    call_command("purge_idempotency_keys", stdout=out)

    assert set(IdempotencyKey.objects.values_list("key", flat=True)) == {"live-a"}
    assert "Deleted 2 expired idempotency keys" in out.getvalue()


def test_a_replay_still_counts_against_the_rate_limits(api_a, settings, clock):
    settings.CDP_INGEST_RATE_LIMITS = [(2, 60)]
    body = _body(api_a, [api_a.entry("R-1")])
    assert _post_raw(api_a, body).status_code == 200
    assert _post_raw(api_a, body).headers["Idempotent-Replayed"] == "true"

    third = _post_raw(api_a, body)

    assert (third.status_code, third.json()["errorCode"]) == (429, "RATE_LIMITED")


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_are_processed_once(tenant_a, tenant_b):
    """Eight clients send the same request with the same key at once: one is processed,
    the others wait for its commit and get its answer."""
    config = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Changed",
        settings=UserEventSettings(event_name="member_changed", category="UserIdentity"),
    )
    seed = ingest_for(tenant_a)
    assert seed.post([seed.entry(f"R-{i}", customFieldLong01=0) for i in range(10)]).status_code
    clients = [ingest_for(tenant_a) for _ in range(8)]
    body = _body(
        clients[0],
        [clients[0].entry(f"R-{i}", customFieldLong01=1) for i in range(10)],
        jeConfigId=config.config_id,
    )
    barrier = threading.Barrier(len(clients))

    def send(api: Ingest):
        try:
            barrier.wait(timeout=30)
            return _post_raw(api, body)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        responses = list(pool.map(send, clients, timeout=120))

    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    replayed = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    assert len(replayed) == 7
    answer = responses[0].json()
    assert answer["updated"] == 10
    # One processing: ten Changed events, one log row with the key (seven replays), one key.
    assert UserEvent.objects.filter(organization=tenant_a.organization).count() == 10
    logged = IngestionRequest.objects.filter(
        organization=tenant_a.organization, idempotency_key=KEY
    ).get()
    assert (logged.request_id, logged.replays) == (answer["requestId"], 7)
    assert IdempotencyKey.objects.filter(organization=tenant_a.organization).count() == 1
    assert not IdempotencyKey.objects.filter(organization=tenant_b.organization).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_holding_no_key_are_processed_once(tenant_a):
    """The same without any record key to lock (every entry rejected): the key's own
    lock keeps the duplicates apart."""
    clients = [ingest_for(tenant_a) for _ in range(8)]
    body = _body(clients[0], [{"refId": f"X-{i}"} for i in range(5)])
    barrier = threading.Barrier(len(clients))

    def send(api: Ingest):
        try:
            barrier.wait(timeout=30)
            return _post_raw(api, body)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        responses = list(pool.map(send, clients, timeout=120))

    assert {r.status_code for r in responses} == {400}
    assert len({r.content for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 7
    logged = IngestionRequest.objects.filter(organization=tenant_a.organization).get()
    assert (logged.error_code, logged.replays) == ("INVALID_ENTRIES", 7)


@pytest.mark.django_db(transaction=True)
def test_a_refused_request_with_a_key_ends_its_transaction(tenant_a):
    """The refusal's key lookup runs in a transaction of its own: it is over when the
    answer leaves, and the refusal's log row is committed (seen from another connection)."""
    api = ingest_for(tenant_a)
    refused = _post_raw(
        api, json.dumps({"objectType": "nope", "source": "CRM", "entries": [{}]}).encode()
    )
    assert refused.json()["errorCode"] == "INVALID_OBJECT_TYPE"

    assert not connection.in_atomic_block
    if connection.vendor == "postgresql":
        import psycopg

        assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE

    def logged_elsewhere() -> list[str]:
        try:
            return list(IngestionRequest.objects.values_list("error_code", flat=True))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(logged_elsewhere).result(timeout=30) == ["INVALID_OBJECT_TYPE"]
