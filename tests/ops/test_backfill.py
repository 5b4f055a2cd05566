"""Backfill of a Created User Event (ingestion/backfill.py, `manage.py backfill_user_event`,
the task engine's `backfill_user_event`): exactly the events real ingests would fire,
created-once held (a re-run adds nothing, records that fired are skipped), a dry run
that counts and writes nothing, one requestId and `properties.backfill`, two
organizations apart, Changed User Events refused, and the events reaching destinations
in batches of 100 in order."""

from __future__ import annotations

import uuid
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ingestion import pipeline
from ingestion.backfill import BackfillRefused, user_event_backfill
from ingestion.destinations import destination_create, destinations_deliver_due
from ingestion.models import DestinationDelivery
from journeys.models import UserEvent
from tests.journeys.conftest import config_create, ingest

HALF = {
    "match": "all",
    "conditions": [{"field": "customFieldLong01", "operator": "gte", "value": 500}],
}


def load(client, tenant, token, count: int, prefix: str = "R") -> None:
    """`count` records, every other one with 900 points (passing HALF), 50 a request,
    through the ingest pipeline as an import sends them (no rate limit to wait for)."""
    for start in range(0, count, 50):
        entries = [
            {
                "momCode": tenant.mom_code,
                "refId": f"{prefix}-{n:05d}",
                "customFieldLongs": {"customFieldLong01": 900 if n % 2 == 0 else 100},
            }
            for n in range(start, min(start + 50, count))
        ]
        answer = pipeline.ingest(
            organization=tenant.organization,
            api_key=None,
            request_id=uuid.uuid4().hex,
            data={"objectType": "custom-model", "source": "CRM", "entries": entries},
        )
        assert answer.status == 200, answer.content


def events(tenant, config) -> list[UserEvent]:
    return list(UserEvent.objects.filter(organization=tenant.organization, config=config))


def backfill(*args: str) -> str:
    out = StringIO()
    call_command("backfill_user_event", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_10000_records_half_passing_make_5000_events_then_a_rerun_none(client, tenant_a, token_a):
    load(client, tenant_a, token_a, 10_000)
    config = config_create(tenant_a, filters=HALF)

    dry = backfill(config.config_id, "--dry-run")
    assert dry.strip() == (
        f"{config.config_id}: 10000 records read, 5000 pass the filter, 0 fired before; "
        "would generate 5000 events."
    )
    assert events(tenant_a, config) == []

    first = backfill(config.config_id)
    stored = events(tenant_a, config)
    assert len(stored) == 5000
    assert {e.source_id for e in stored} == {f"R-{n:05d}" for n in range(0, 10_000, 2)}
    assert len({e.request_id for e in stored}) == 1 and stored[0].request_id in first
    assert all(e.properties.get("backfill") is True for e in stored)
    assert {(e.condition, e.event_name, e.ingested) for e in stored} == {
        ("Created", "membership_created", False)
    }

    again = backfill(config.config_id)
    assert "5000 fired before; generated 0 events" in again
    assert len(events(tenant_a, config)) == 5000


def test_a_backfilled_event_equals_what_a_real_ingest_fires(client, tenant_a, token_a):
    config = config_create(tenant_a, filters=HALF)
    record = {
        "momCode": tenant_a.mom_code,
        "refId": "LIVE-1",
        "customerId": "C-1",
        "customFieldTexts": {"customField01": "gold"},
        "customFieldLongs": {"customFieldLong01": 900},
    }
    ingest(client, tenant_a, token_a, [record], config_id=config.config_id)
    (live,) = events(tenant_a, config)
    other = {**record, "refId": "OLD-1"}
    ingest(client, tenant_a, token_a, [other])  # no User Event named: nothing fires

    run = user_event_backfill(organization=tenant_a.organization, config_id=config.config_id)

    assert (run.records, run.matching, run.already_fired, run.generated) == (2, 2, 1, 1)
    backfilled = UserEvent.objects.get(organization=tenant_a.organization, source_id="OLD-1")
    columns = ("source", "condition", "event_name", "channel", "event_ctg", "customer_id")
    assert [getattr(backfilled, c) for c in columns] == [getattr(live, c) for c in columns]
    assert backfilled.properties == {**live.properties, "backfill": True}


def test_two_organizations_stay_apart(client, tenant_a, token_a, tenant_b, token_b):
    load(client, tenant_a, token_a, 20)
    load(client, tenant_b, token_b, 30)
    config_a, config_b = config_create(tenant_a, filters=HALF), config_create(tenant_b)

    run = user_event_backfill(organization=tenant_a.organization, config_id=config_a.config_id)

    assert run.generated == 10
    assert UserEvent.objects.filter(organization=tenant_b.organization).count() == 0
    with pytest.raises(BackfillRefused, match="Unknown jeConfigId"):
        user_event_backfill(organization=tenant_a.organization, config_id=config_b.config_id)
    assert (
        user_event_backfill(
            organization=tenant_b.organization, config_id=config_b.config_id
        ).generated
        == 30
    )


def test_a_changed_or_disabled_user_event_is_refused_with_its_message(tenant_a):
    changed = config_create(tenant_a, "Changed")
    with pytest.raises(CommandError, match="only a Created User Event can be backfilled"):
        backfill(changed.config_id)
    disabled = config_create(tenant_a, enabled=False)
    with pytest.raises(CommandError, match="is disabled: enable it first"):
        backfill(disabled.config_id)
    with pytest.raises(CommandError, match="Unknown jeConfigId: nope"):
        backfill("nope")


def test_since_takes_the_records_updated_since(client, tenant_a, token_a):
    load(client, tenant_a, token_a, 4)
    config = config_create(tenant_a)
    from datetime import timedelta

    from django.utils import timezone

    from cdp.models import EntityRecord

    EntityRecord.objects.filter(organization=tenant_a.organization, key="R-00000").update(
        updated_at=timezone.now() - timedelta(days=10)
    )
    since = (timezone.now() - timedelta(days=1)).date().isoformat()

    assert "generated 3 events" in backfill(config.config_id, "--since", since)
    with pytest.raises(CommandError, match="not an ISO 8601"):
        backfill(config.config_id, "--since", "yesterday")


def test_a_250_event_backfill_reaches_destinations_100_at_a_time_in_order(
    client, tenant_a, token_a, callback_server
):
    load(client, tenant_a, token_a, 250)
    config = config_create(tenant_a)
    destination_create(organization=tenant_a.organization, name="J", url=callback_server.url)

    run = user_event_backfill(organization=tenant_a.organization, config_id=config.config_id)
    while destinations_deliver_due().claimed:
        pass

    assert run.generated == 250
    rows = DestinationDelivery.objects.filter(organization=tenant_a.organization)
    assert sorted(len(r.event_ids) for r in rows) == [50, 100, 100]
    sent: list[Any] = [
        e["sourceId"]
        for r in sorted(callback_server.received, key=lambda r: r.json["events"][0]["sourceId"])
        for e in r.json["events"]
    ]
    assert sent == [f"R-{n:05d}" for n in range(250)]
    assert all(
        e["properties"]["backfill"] is True
        for r in callback_server.received
        for e in r.json["events"]
    )


def test_the_task_engine_runs_a_queued_backfill(client, tenant_a, token_a):
    from ingestion import tasks

    load(client, tenant_a, token_a, 6)
    config = config_create(tenant_a, filters=HALF)
    result = tasks.backfill_user_event.enqueue(tenant_a.organization.pk, config.config_id)

    call_command("run_worker", "--once", stdout=StringIO())

    done = tasks.backfill_user_event.get_result(result.id)
    assert done.return_value["generated"] == 3
    assert len(events(tenant_a, config)) == 3
    # The progress the User Event's page shows while it runs: records read of the total.
    from django.core.cache import cache

    from journeys.models import backfill_progress_key

    assert cache.get(backfill_progress_key(config)) == {"records": 6, "total": 6}


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_thread_writes_while_the_next_batch_is_read(callback_server):
    """The command's path: batches written by a thread of their own, every count kept."""
    from tests.conftest import tenant_create

    tenant = tenant_create("Acme Retail", "ops@acme.test")
    load(None, tenant, None, 1200)
    config = config_create(tenant, filters=HALF)
    destination_create(organization=tenant.organization, name="J", url=callback_server.url)

    run = user_event_backfill(
        organization=tenant.organization, config_id=config.config_id, batch_size=500
    )
    again = user_event_backfill(
        organization=tenant.organization, config_id=config.config_id, batch_size=500
    )

    assert (run.records, run.matching, run.generated, run.already_fired) == (1200, 600, 600, 0)
    assert (again.generated, again.already_fired) == (0, 600)
    assert len(events(tenant, config)) == 600
    queued = DestinationDelivery.objects.filter(organization=tenant.organization)
    assert sum(len(r.event_ids) for r in queued) == 600  # a re-run queues nothing
