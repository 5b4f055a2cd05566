"""Concurrent requests creating the same new keys produce one `Created` event per record
("at most once per record, ever"), on both databases (SQLite serializes them)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from cdp import services
from cdp.models import EntityRecord
from journeys.models import UserEvent
from tests.conftest import tenant_create
from tests.journeys.conftest import config_create, ingest, member

THREADS = 6
KEYS = [f"RACE-{i}" for i in range(10)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_create_one_created_event_per_record():
    tenant = tenant_create("Acme Retail", "ops@acme.test")
    other = tenant_create("Globex", "ops@globex.test")
    other_config = config_create(other)
    config = config_create(tenant)
    tokens = [services.token_issue(api_key=tenant.api_key)[1] for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    responses: list[Any] = [None] * THREADS
    errors: list[BaseException] = []

    def send(index: int) -> None:
        try:
            client = APIClient()
            entries = [
                member(tenant, key, customFieldTexts={"customField02": f"thread-{index}"})
                for key in KEYS
            ]
            barrier.wait(timeout=30)
            responses[index] = ingest(
                client, tenant, tokens[index], entries, config_id=config.config_id
            )
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    bodies = [r.json() for r in responses]
    assert [r.status_code for r in responses] == [200] * THREADS, bodies
    events = UserEvent.objects.filter(organization=tenant.organization, config=config)
    assert sorted(events.values_list("source_id", flat=True)) == sorted(KEYS)
    assert EntityRecord.objects.filter(organization=tenant.organization).count() == len(KEYS)
    # Each key was reported created once across the requests, with the stored event's id.
    created = [
        (result["refId"], result.get("eventId"))
        for body in bodies
        for result in body["results"]
        if result["action"] == "created"
    ]
    assert sorted(key for key, _ in created) == sorted(KEYS)
    assert dict(created) == dict(events.values_list("source_id", "event_id"))
    assert sum(body["events"]["generated"] for body in bodies) == len(KEYS)
    assert not UserEvent.objects.filter(organization=other.organization).exists()
    assert not UserEvent.objects.filter(config=other_config).exists()
