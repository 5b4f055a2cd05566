"""Preview of a User Event on real records (journeys/preview.py): what it would fire equals
what real ingests of the same records fire, for Created and Changed User Events with
filters and update values; every condition worded with its result; nothing written; two
organizations apart; the record count bounded; settings it could not be saved with
refused."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from cdp.models import EntityRecord
from journeys.models import UserEvent
from journeys.preview import user_event_preview
from journeys.user_event_settings import UserEventSettings
from tests.journeys.conftest import config_create, ingest, member

SETTINGS = UserEventSettings(
    event_name="membership_created",
    category="UserIdentity",
    filters={
        "match": "all",
        "conditions": [
            {"field": "customFieldLong01", "operator": "gte", "value": 500},
            {"field": "customField01", "operator": "in", "value": ["gold", "silver"]},
        ],
    },
    update_values=[
        {"target": "value", "field": "customFieldLong01"},
        {"target": "properties.tier", "field": "customField01"},
    ],
)
RECORDS = [(900, "gold"), (100, "gold"), (700, "bronze"), (500, "silver"), (None, "gold")]


def entries(tenant, prefix: str) -> list[dict[str, Any]]:
    made = []
    for n, (points, tier) in enumerate(RECORDS):
        fields: dict[str, Any] = {"customFieldTexts": {"customField01": tier}}
        if points is not None:
            fields["customFieldLongs"] = {"customFieldLong01": points}
        made.append(member(tenant, f"{prefix}-{n}", **fields))
    return made


def compared(event: dict[str, Any]) -> tuple:
    return (event["eventName"], event["condition"], event["value"], event["properties"])


def test_a_created_preview_fires_what_real_creates_fire(client, tenant_a, token_a):
    assert ingest(client, tenant_a, token_a, entries(tenant_a, "OLD")).status_code == 200
    preview = user_event_preview(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Created",
        settings=SETTINGS,
    )
    assert UserEvent.objects.count() == 0  # it reads; it never writes

    config = config_create(tenant_a, **asdict(SETTINGS))
    ingest(client, tenant_a, token_a, entries(tenant_a, "NEW"), config_id=config.config_id)
    fired = {e.source_id.replace("NEW", "OLD"): e for e in UserEvent.objects.filter(config=config)}

    by_key = {r.key: r for r in preview.records}
    assert {k for k, r in by_key.items() if r.fires} == set(fired) == {"OLD-0", "OLD-3"}
    for key, event in fired.items():
        stored = (event.event_name, event.condition, event.value, event.properties)
        assert compared(by_key[key].event) == stored
    assert preview.summary == "2 of 5 would fire"
    assert by_key["OLD-1"].conditions == [
        ("customFieldLong01 ≥ 500: 100 — no", False),
        ('customField01 is one of ["gold", "silver"]: \'gold\' — yes', True),
    ]
    assert by_key["OLD-1"].event is None


def test_a_changed_preview_fires_what_real_updates_fire(client, tenant_a, token_a):
    """A Changed User Event sees each record as just updated from nothing stored: what
    real updates of records that held none of these fields fire."""
    settings = replace(
        SETTINGS,
        filters={
            "match": "all",
            "conditions": [
                {"field": "customFieldLong01", "operator": "gte", "value": 500},
                {"field": "customFieldLong01", "operator": "changed"},
            ],
        },
    )
    ingest(client, tenant_a, token_a, entries(tenant_a, "OLD"))
    preview = user_event_preview(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Changed",
        settings=settings,
    )

    config = config_create(tenant_a, "Changed", **asdict(settings))
    ingest(client, tenant_a, token_a, [member(tenant_a, f"NEW-{n}") for n in range(5)])
    ingest(client, tenant_a, token_a, entries(tenant_a, "NEW"), config_id=config.config_id)
    fired = {e.source_id.replace("NEW", "OLD"): e for e in UserEvent.objects.filter(config=config)}

    by_key = {r.key: r for r in preview.records}
    assert {k for k, r in by_key.items() if r.fires} == set(fired) == {"OLD-0", "OLD-2", "OLD-3"}
    for key, event in fired.items():
        stored = (event.event_name, event.condition, event.value, event.properties)
        assert compared(by_key[key].event) == stored
    assert ("customFieldLong01 changed: 900 — yes", True) in by_key["OLD-0"].conditions


def test_the_most_recently_updated_records_first_and_the_count_bounded(client, tenant_a, token_a):
    ingest(client, tenant_a, token_a, entries(tenant_a, "OLD"))
    EntityRecord.objects.filter(key="OLD-2").update(updated_at="2030-01-01T00:00:00Z")

    def keys(limit: int) -> list[str]:
        preview = user_event_preview(
            organization=tenant_a.organization,
            data_model=tenant_a.model,
            trigger="Created",
            settings=SETTINGS,
            limit=limit,
        )
        return [r.key for r in preview.records]

    assert keys(2)[0] == "OLD-2" and len(keys(2)) == 2
    assert len(keys(0)) == 1 and len(keys(10_000)) == 5


def test_another_organization_s_records_are_never_previewed(
    client, tenant_a, token_a, tenant_b, token_b
):
    ingest(client, tenant_a, token_a, entries(tenant_a, "A"))
    ingest(client, tenant_b, token_b, entries(tenant_b, "B"))

    preview = user_event_preview(
        organization=tenant_b.organization,
        data_model=tenant_b.model,
        trigger="Created",
        settings=SETTINGS,
    )

    assert sorted(r.key for r in preview.records) == [f"B-{n}" for n in range(5)]


def test_settings_that_could_not_be_saved_are_refused(tenant_a):
    bad = replace(SETTINGS, filters={"conditions": [{"field": "nope", "operator": "eq"}]})
    with pytest.raises(ValidationError, match=r"filter\.conditions\[0\]"):
        user_event_preview(
            organization=tenant_a.organization,
            data_model=tenant_a.model,
            trigger="Created",
            settings=bad,
        )
