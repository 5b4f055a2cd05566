"""Constant, pinned query counts per ingest request: the same SQL statements for 1 entry
and for 50, whatever the mix of created, updated and rejected entries, with User Events
and callbacks on; on PostgreSQL two round trips in all (BEGIN with the locked read, the
write with its COMMIT) and one round trip to Redis."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cdp import services
from cdp.callback_settings import callback_settings_set
from cdp.models import EntityRecord
from ingestion.models import CallbackDelivery, IngestionRequest, RecordHistory
from journeys.models import UserEvent
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.ingestion.conftest import ingest_for

pytestmark = pytest.mark.django_db

POSTGRESQL = connection.vendor == "postgresql"


def _statements(api, entries, **body) -> tuple[list[str], dict]:
    with CaptureQueriesContext(connection) as captured:
        response = api.post(entries, **body)
    assert response.status_code in (200, 400), response.content
    return [q["sql"] for q in captured.captured_queries], response.json()


def _kinds(statements: list[str]) -> list[str]:
    """Each statement named by what it does, so a failure reads as a list of steps."""
    names = []
    for sql in statements:
        text = " ".join(sql.split()).upper()
        if text.startswith("SAVEPOINT"):
            names.append("savepoint")
        elif text.startswith("RELEASE SAVEPOINT"):
            names.append("release")
        elif any(f"EXECUTE CDP_{lock}_LOCK" in text for lock in ("KEY", "MODEL", "IDEMPOTENCY")):
            names.append("lock+read")
        elif "EXECUTE CDP_WRITE" in text:
            names.append("write")
        elif "EXECUTE CDP_" in text:
            names.append("read")  # a dry run's: no lock
        elif text.startswith("UPDATE") and "INGESTIONREQUEST" in text:
            names.append("count replay")
        elif text.startswith("SELECT") and "IDEMPOTENCYKEY" in text:
            names.append("read answer")
        elif text.startswith("INSERT INTO") and "IDEMPOTENCYKEY" in text:
            names.append("insert answer")
        elif text.startswith("INSERT INTO") and "RECORDHISTORY" in text:
            names.append("insert history")
        elif text.startswith("SELECT") and "CDP_ENTITYRECORD" in text:
            names.append("read records")
        elif text.startswith("SELECT") and "JOURNEYS_USEREVENT" in text:
            names.append("read events")
        elif text.startswith("INSERT INTO") and "CDP_ENTITYRECORD" in text:
            names.append("upsert records")
        elif text.startswith("INSERT INTO") and "JOURNEYS_USEREVENT" in text:
            names.append("insert events")
        elif text.startswith("INSERT INTO") and "CALLBACKDELIVERY" in text:
            names.append("insert callback")
        elif text.startswith("INSERT INTO") and "INGESTIONREQUEST" in text:
            names.append("insert log")
        else:
            names.append(text[:60])
    return names


def _mixed(api, prefix: str = "") -> list[dict[str, Any]]:
    """50 entries, interleaved: 20 new keys, 20 existing keys changed, 10 rejected."""
    batch = []
    for i in range(50):
        kind = i % 5
        if kind in (0, 1):
            batch.append(api.entry(f"{prefix}NEW-{i:02}", customFieldLong01=100 + i))
        elif kind in (2, 3):
            batch.append(api.entry(f"OLD-{i:02}", customField01=f"changed{prefix}"))
        elif i % 2:
            batch.append(api.entry(f"BAD-{i:02}", customFieldLong01="4.2"))
        else:
            batch.append({"refId": f"BAD-{i:02}"})  # no momCode
    return batch


def _seed(api) -> None:
    old = [api.entry(f"OLD-{i:02}", customField01="old", customFieldLong01=1) for i in range(50)]
    assert api.post(old).json()["created"] == 50


@pytest.fixture
def callbacks_on(tenant_a):
    callback_settings_set(
        organization=tenant_a.organization, url="https://partner.example/cb", enabled=True
    )


def _config(tenant, trigger: str):
    return journey_event_config_create(
        organization=tenant.organization,
        data_model=tenant.model,
        trigger=trigger,
        settings=UserEventSettings(
            event_name=f"membership_{trigger.lower()}",
            category="UserIdentity",
            filters={
                "conditions": [{"field": "customFieldLong01", "operator": "gte", "value": 50}]
            },
            update_values=[{"target": "value", "field": "customFieldLong01"}],
        ),
    )


# Inside the test's transaction the request's block is a savepoint; the PostgreSQL
# statements are the locked read and the write, whatever the request holds.
EXPECTED = {
    "postgresql": {
        "records": ["savepoint", "lock+read", "write", "release"],
        "created": ["savepoint", "lock+read", "write", "release"],
        "changed": ["savepoint", "lock+read", "write", "release"],
        "user-events": ["savepoint", "lock+read", "write", "release"],
        "rejected": ["savepoint", "write", "release"],
        "keyed": ["savepoint", "lock+read", "write", "release"],
        "replayed": ["savepoint", "lock+read", "count replay", "release"],
        "dry run": ["read"],
        "history": ["savepoint", "lock+read", "write", "release"],
    },
    "sqlite": {
        "records": ["savepoint", "read records", "upsert records", "insert log", "release"],
        "created": [
            "savepoint",
            "read records",
            "read events",
            "upsert records",
            "insert events",
            "insert callback",
            "insert log",
            "release",
        ],
        "changed": [
            "savepoint",
            "read records",
            "upsert records",
            "insert events",
            "insert callback",
            "insert log",
            "release",
        ],
        "user-events": [
            "savepoint",
            "read events",
            "insert events",
            "insert callback",
            "insert log",
            "release",
        ],
        "rejected": ["savepoint", "insert log", "release"],
        "keyed": [
            "savepoint",
            "read answer",
            "read records",
            "read events",
            "upsert records",
            "insert events",
            "insert callback",
            "insert answer",
            "insert log",
            "release",
        ],
        "replayed": ["savepoint", "read answer", "count replay", "release"],
        "dry run": ["read records", "read events"],
        "history": [
            "savepoint",
            "read records",
            "upsert records",
            "insert history",
            "insert log",
            "release",
        ],
    },
}[connection.vendor]


def test_records_one_and_fifty_mixed_entries_run_the_pinned_statements(api_a, api_b):
    _seed(api_a)
    _seed(api_b)

    one, one_body = _statements(api_a, [api_a.entry("SOLO", customField01="x")])
    fifty, fifty_body = _statements(api_a, _mixed(api_a))

    assert (one_body["created"], one_body["failed"]) == (1, 0)
    assert {k: fifty_body[k] for k in ("created", "updated", "unchanged", "failed")} == {
        "created": 20,
        "updated": 20,
        "unchanged": 0,
        "failed": 10,
    }
    assert _kinds(one) == _kinds(fifty) == EXPECTED["records"]
    # The other organization's rows were not touched.
    assert set(api_b.records().values_list("data__customField01", flat=True)) == {"old"}


def test_created_user_event_and_callback_run_the_pinned_statements(
    api_a, tenant_a, tenant_b, callbacks_on
):
    config = _config(tenant_a, "Created")
    _seed(api_a)
    api_a.post([api_a.entry("WARM", customFieldLong01=1)], jeConfigId=config.config_id)

    one, one_body = _statements(
        api_a, [api_a.entry("SOLO", customFieldLong01=99)], jeConfigId=config.config_id
    )
    fifty, fifty_body = _statements(api_a, _mixed(api_a), jeConfigId=config.config_id)

    assert one_body["events"]["generated"] == 1
    assert fifty_body["events"]["generated"] == fifty_body["created"] == 20
    assert _kinds(one) == _kinds(fifty) == EXPECTED["created"]
    assert CallbackDelivery.objects.filter(organization=tenant_a.organization).count() == 4
    assert UserEvent.objects.filter(organization=tenant_a.organization).count() == 21
    assert not UserEvent.objects.filter(organization=tenant_b.organization).exists()


def test_changed_user_event_and_callback_run_the_pinned_statements(api_a, tenant_a, callbacks_on):
    config = _config(tenant_a, "Changed")
    _seed(api_a)
    api_a.post([api_a.entry("OLD-49", customFieldLong01=2)], jeEventKey=config.event_key)

    one, one_body = _statements(
        api_a, [api_a.entry("OLD-49", customFieldLong01=77)], jeEventKey=config.event_key
    )
    fifty, fifty_body = _statements(
        api_a,
        [api_a.entry(f"OLD-{i:02}", customFieldLong01=60 + i) for i in range(40)]
        + [api_a.entry(f"NEW-{i}") for i in range(5)]
        + [{"refId": f"BAD-{i}"} for i in range(5)],
        jeEventKey=config.event_key,
    )

    assert one_body["events"]["generated"] == 1
    assert (fifty_body["updated"], fifty_body["created"], fifty_body["failed"]) == (40, 5, 5)
    assert fifty_body["events"]["generated"] == 40
    assert _kinds(one) == _kinds(fifty) == EXPECTED["changed"]


def _event(source_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "source": "PurchaseOrder",
        "sourceId": source_id,
        "channel": "Online",
        "eventCtg": "Transaction",
        "eventName": "purchase",
        "eventAt": 1_700_000_000_000,
        **fields,
    }


def test_user_event_entries_run_the_pinned_statements(api_a, tenant_a, callbacks_on):
    api_a.post([_event(f"E-{i}") for i in range(20)], object_type="user-event")

    one, _ = _statements(api_a, [_event("single")], object_type="user-event")
    fifty, body = _statements(
        api_a,
        [_event(f"E-{i}") for i in range(20)]
        + [_event(f"F-{i}") for i in range(20)]
        + [_event(f"B-{i}", channel="Email") for i in range(10)],
        object_type="user-event",
    )

    assert (body["created"], body["unchanged"], body["failed"]) == (20, 20, 10)
    assert _kinds(one) == _kinds(fifty) == EXPECTED["user-events"]


def test_rejected_entries_alone_write_only_the_log_row(api_a, tenant_a):
    api_a.post([{"refId": "WARM"}])  # the worker loads the organization's schema
    one, one_body = _statements(api_a, [{"refId": "X"}])
    fifty, fifty_body = _statements(api_a, [{"refId": f"X-{i}"} for i in range(50)])

    assert (one_body["errorCode"], fifty_body["failed"]) == ("INVALID_ENTRIES", 50)
    assert _kinds(one) == _kinds(fifty) == EXPECTED["rejected"]
    assert not EntityRecord.objects.filter(organization=tenant_a.organization).exists()
    assert IngestionRequest.objects.filter(organization=tenant_a.organization).count() == 3


def test_a_model_keeping_history_runs_the_pinned_statements(api_a, api_b, tenant_a):
    services.custom_model_tags_set(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        tags=["SUPPORT_IGNORED_UPDATE_CFS", "KEEP_HISTORY"],
    )
    _seed(api_a)

    one, one_body = _statements(api_a, [api_a.entry("OLD-00", customField01="one")])
    fifty, fifty_body = _statements(api_a, _mixed(api_a))

    assert (one_body["updated"], fifty_body["created"], fifty_body["updated"]) == (1, 20, 20)
    assert _kinds(one) == _kinds(fifty) == EXPECTED["history"]
    # 50 seeded, 1 changed, 20 created and 20 changed: one entry each.
    assert RecordHistory.objects.filter(organization=tenant_a.organization).count() == 91
    assert not RecordHistory.objects.filter(organization=api_b.tenant.organization).exists()


def test_an_idempotency_key_and_its_replay_run_the_pinned_statements(
    api_a, tenant_a, tenant_b, callbacks_on
):
    config = _config(tenant_a, "Created")
    _seed(api_a)
    api_a.post([api_a.entry("WARM", customFieldLong01=1)], jeConfigId=config.config_id)

    def keyed(key: str, entries: list) -> tuple[list[str], dict]:
        headers = {"TOKEN": api_a.token, "API_KEY": tenant_a.raw_key, "Idempotency-Key": key}
        return _statements(api_a, entries, jeConfigId=config.config_id, headers=headers)

    one, one_body = keyed("one", [api_a.entry("SOLO", customFieldLong01=99)])
    fifty, fifty_body = keyed("fifty", _mixed(api_a))
    one_again, one_replay = keyed("one", [api_a.entry("SOLO", customFieldLong01=99)])
    fifty_again, fifty_replay = keyed("fifty", _mixed(api_a))

    assert (one_body["events"]["generated"], fifty_body["events"]["generated"]) == (1, 20)
    assert _kinds(one) == _kinds(fifty) == EXPECTED["keyed"]
    assert (one_replay, fifty_replay) == (one_body, fifty_body)
    assert _kinds(one_again) == _kinds(fifty_again) == EXPECTED["replayed"]
    assert not UserEvent.objects.filter(organization=tenant_b.organization).exists()


def test_a_dry_run_runs_the_pinned_reads_and_writes_nothing(api_a, tenant_a, callbacks_on):
    config = _config(tenant_a, "Created")
    _seed(api_a)
    api_a.post([api_a.entry("WARM", customFieldLong01=1)], jeConfigId=config.config_id)
    logged = IngestionRequest.objects.count()

    def dry(entries: list) -> tuple[list[str], dict]:
        with CaptureQueriesContext(connection) as captured:
            response = api_a.client.post(
                "/dhub-i/api/v1.0/ingest?dryRun=true",
                data=json.dumps(
                    {
                        "objectType": "custom-model",
                        "source": "CRM",
                        "jeConfigId": config.config_id,
                        "entries": entries,
                    }
                ),
                content_type="application/json",
                headers={"TOKEN": api_a.token, "API_KEY": tenant_a.raw_key},
            )
        return [q["sql"] for q in captured.captured_queries], response.json()

    one, one_body = dry([api_a.entry("SOLO", customFieldLong01=99)])
    fifty, fifty_body = dry(_mixed(api_a))

    assert (one_body["dryRun"], one_body["events"]["generated"]) == (True, 1)
    assert (fifty_body["created"], fifty_body["updated"], fifty_body["failed"]) == (20, 20, 10)
    assert _kinds(one) == _kinds(fifty) == EXPECTED["dry run"]
    assert IngestionRequest.objects.count() == logged
    assert not EntityRecord.objects.filter(key="SOLO").exists()


# --- round trips, outside any test transaction ---------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgresql_takes_two_round_trips_with_begin_and_commit_in_them(tenant_a, tenant_b):
    if not POSTGRESQL:
        pytest.skip("PostgreSQL only: SQLite has no round trips")
    api = ingest_for(tenant_a)
    callback_settings_set(
        organization=tenant_a.organization, url="https://partner.example/cb", enabled=True
    )
    config = _config(tenant_a, "Created")
    api.post([api.entry("WARM", customFieldLong01=60)], jeConfigId=config.config_id)
    commands = []
    # psycopg's own commands (BEGIN before the first statement, COMMIT when one is left
    # to do): what reaches the server besides the statements.
    raw = connection.connection
    real_exec_command = raw._exec_command

    def exec_command(command, *args, **kwargs):
        commands.append(bytes(command))
        return real_exec_command(command, *args, **kwargs)

    with CaptureQueriesContext(connection) as captured:
        raw._exec_command = exec_command
        try:
            response = api.post(
                [api.entry("R-1", customFieldLong01=70), api.entry("WARM", customField01="x")],
                jeConfigId=config.config_id,
            )
        finally:
            del raw._exec_command
    body = response.json()

    # The transaction opens in the first round trip and commits in the second; psycopg
    # sends no BEGIN or COMMIT of its own.
    statements = [q["sql"] for q in captured.captured_queries]
    assert _kinds(statements) == ["lock+read", "write"]
    assert statements[0].startswith("BEGIN;")
    assert statements[1].rstrip().endswith("COMMIT")
    assert commands == []
    assert (body["created"], body["updated"], body["events"]["generated"]) == (1, 1, 1)
    # Committed, with the log row and the callback written in the same statement.
    assert IngestionRequest.objects.filter(request_id=body["requestId"]).get().created == 1
    assert json.loads(CallbackDelivery.objects.get(request_id=body["requestId"]).body)["data"]
    assert not EntityRecord.objects.filter(organization=tenant_b.organization).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgresql_takes_two_round_trips_with_a_key_and_two_for_its_replay(tenant_a):
    if not POSTGRESQL:
        pytest.skip("PostgreSQL only: SQLite has no round trips")
    api = ingest_for(tenant_a)
    api.post([api.entry("WARM")])
    headers = {"TOKEN": api.token, "API_KEY": tenant_a.raw_key, "Idempotency-Key": "k-1"}

    rounds = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as captured:
            response = api.post([api.entry("R-1", customFieldLong01=70)], headers=headers)
        rounds.append([q["sql"] for q in captured.captured_queries])

    first, replay = rounds
    assert _kinds(first) == ["lock+read", "write"]
    assert first[0].startswith("BEGIN;") and first[1].rstrip().endswith("COMMIT")
    assert _kinds(replay) == ["lock+read", "count replay"]
    assert replay[1].rstrip().endswith("COMMIT")
    assert response.headers["Idempotent-Replayed"] == "true"
    assert IngestionRequest.objects.get(idempotency_key="k-1").replays == 1


def test_one_redis_round_trip_per_request_in_the_steady_state(api_a, shared_redis, monkeypatch):
    import redis.client

    calls = []
    real_execute = redis.client.Pipeline.execute
    real_command = redis.Redis.execute_command

    def execute(self, *args, **kwargs):
        calls.append("pipeline")
        return real_execute(self, *args, **kwargs)

    def command(self, *args, **kwargs):
        if not isinstance(self, redis.client.Pipeline):
            calls.append(args[0])
        return real_command(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    monkeypatch.setattr(redis.Redis, "execute_command", command)

    api_a.post([api_a.entry("WARM")])  # the worker learns the token, the schema
    calls.clear()
    for i in range(3):
        assert api_a.post([api_a.entry(f"R-{i}")]).json()["created"] == 1

    # One command each: the exchange script (cdp/shared_store.py).
    assert calls == ["EVALSHA"] * 3


def test_a_request_without_the_gate_reads_the_schema_version_once(
    tenant_a, shared_redis, monkeypatch
):
    """An import's batch and the Console's test form come without the gate's read: the
    schema's parts (destinations, models, User Events, suppressions) share one read."""
    import redis

    from ingestion.console import console_ingest

    reads = []
    real_command = redis.Redis.execute_command

    def command(self, *args, **kwargs):
        reads.append(args[0])
        return real_command(self, *args, **kwargs)

    def send(ref_id: str) -> Any:
        body = {
            "objectType": "custom-model",
            "source": "CRM",
            "entries": [{"momCode": tenant_a.mom_code, "refId": ref_id}],
        }
        return console_ingest(
            api_key=tenant_a.api_key,
            body=json.dumps(body),
            init_data=False,
            request_id=uuid.uuid4().hex,
        )

    send("WARM")  # the version made, the schema loaded
    monkeypatch.setattr(redis.Redis, "execute_command", command)

    answer = send("R-1")

    assert json.loads(answer.content)["created"] == 1
    # The key's rate limits (the exchange script), then the schema's version, once.
    assert reads == ["EVALSHA", "MGET"]
