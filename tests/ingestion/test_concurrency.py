"""Concurrent ingest requests on the same keys: no field is lost, no record or `Created`
event is duplicated, and no request fails. On both databases: PostgreSQL runs the requests
side by side under their key locks; SQLite serializes them (IMMEDIATE transactions, a busy
timeout), and must not answer "database is locked"."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from cdp import services
from cdp.models import EntityRecord
from journeys.models import UserEvent
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.ingestion.conftest import Ingest, ingest_for

THREADS = 6
KEYS = [f"R-{i:02}" for i in range(20)]
# Thread i writes its own field, customField1i; all threads also write shared ones.
OWN_FIELDS = [f"customField1{i}" for i in range(THREADS)]

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def integrators(tenant_a) -> list[Ingest]:
    """One client and token per thread, all of tenant A, with one field of their own each."""
    for name in OWN_FIELDS:
        services.field_definition_create(
            organization=tenant_a.organization, data_model=tenant_a.model, name=name
        )
    return [ingest_for(tenant_a) for _ in range(THREADS)]


def _run_together(integrators: list[Ingest], batches: list[list[list[dict]]], **kwargs) -> list:
    """Thread i sends batches[i] (a list of requests) once every thread is ready."""
    barrier = threading.Barrier(len(integrators))

    def work(i: int) -> list:
        try:
            barrier.wait(timeout=30)
            answers = []
            for entries in batches[i]:
                response = integrators[i].post(entries, **kwargs)
                answers.append((response.status_code, response.json()))
            return answers
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(integrators)) as pool:
        futures = [pool.submit(work, i) for i in range(len(integrators))]
        return [answer for future in futures for answer in future.result(timeout=120)]


def _batches(api: Ingest, thread: int) -> list[list[dict]]:
    """Thread `thread`'s 20 keys in a shuffled order, split in two requests of 10."""
    keys = KEYS[:]
    random.Random(thread).shuffle(keys)
    entries = [
        api.entry(
            key,
            customerId=f"C-{key}",
            customFieldTexts={OWN_FIELDS[thread]: f"t{thread}-{key}"},
            customFieldLongs={"customFieldLong01": thread},
        )
        for key in keys
    ]
    return [entries[:10], entries[10:]]


def _assert_every_field_of_every_thread(api: Ingest) -> dict[str, str]:
    rows = list(api.records().order_by("key"))
    assert [r.key for r in rows] == KEYS
    for row in rows:
        for thread, name in enumerate(OWN_FIELDS):
            assert row.data.get(name) == f"t{thread}-{row.key}", (row.key, row.data)
        assert row.data["customerId"] == f"C-{row.key}"
        assert row.data["customFieldLong01"] in range(THREADS)
    assert EntityRecord.objects.filter(organization=api.tenant.organization).count() == 20
    return {r.key: r.cdp_id for r in rows}


def _stored_results(answers: list) -> list[dict]:
    for status, body in answers:
        assert status == 200, body
        assert body["success"] is True, body
        assert body["failed"] == 0
    return [r for _status, body in answers for r in body["results"]]


def test_concurrent_updates_of_the_same_keys_lose_no_field(integrators):
    api = integrators[0]
    seeded = api.post([api.entry(key, customField01="seed") for key in KEYS])
    assert seeded.json()["created"] == 20
    seeded_ids = {r["refId"]: r["cdpId"] for r in seeded.json()["results"]}

    answers = _run_together(integrators, [_batches(api, i) for i in range(THREADS)])

    results = _stored_results(answers)
    assert len(results) == THREADS * 20
    assert {r["action"] for r in results} == {"updated"}
    cdp_ids = _assert_every_field_of_every_thread(api)
    assert cdp_ids == seeded_ids
    assert all(r["cdpId"] == cdp_ids[r["refId"]] for r in results)
    assert all(api.data(key)["customField01"] == "seed" for key in KEYS)


def test_concurrent_creates_of_new_keys_create_each_once(integrators, tenant_a):
    config = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Created",
        settings=UserEventSettings(event_name="membership_created", category="UserIdentity"),
    )
    api = integrators[0]
    assert not api.records().exists()

    answers = _run_together(
        integrators,
        [_batches(api, i) for i in range(THREADS)],
        jeConfigId=config.config_id,
    )

    results = _stored_results(answers)
    assert len(results) == THREADS * 20
    created = Counter(r["refId"] for r in results if r["action"] == "created")
    assert created == Counter(dict.fromkeys(KEYS, 1))
    assert {r["action"] for r in results} == {"created", "updated"}
    cdp_ids = _assert_every_field_of_every_thread(api)
    assert all(r["cdpId"] == cdp_ids[r["refId"]] for r in results)
    # The Created User Event fired once per record, for the request that created it.
    events = UserEvent.objects.filter(organization=tenant_a.organization, config=config)
    assert Counter(events.values_list("source_id", flat=True)) == Counter(dict.fromkeys(KEYS, 1))
    assert sum(body["events"]["generated"] for _status, body in answers) == 20
    event_ids = {r["eventId"] for r in results if "eventId" in r}
    assert event_ids == set(events.values_list("event_id", flat=True))


def test_concurrent_requests_repeating_keys_and_clearing_fields(integrators):
    """Each request names every key twice (a set, then a clear of another field): the
    clears of one thread never resurrect or drop another thread's fields."""
    api = integrators[0]
    api.post([api.entry(key, customField02="to clear") for key in KEYS])

    def batches(thread: int) -> list[list[dict]]:
        keys = KEYS[:]
        random.Random(100 + thread).shuffle(keys)
        first = [api.entry(k, customFieldTexts={OWN_FIELDS[thread]: "tmp"}) for k in keys]
        second = [
            api.entry(k, customField02=None, **{OWN_FIELDS[thread]: f"t{thread}-{k}"}) for k in keys
        ]
        return [first[:10] + second[:10], first[10:] + second[10:]]

    answers = _run_together(integrators, [batches(i) for i in range(THREADS)])

    _stored_results(answers)
    for row in api.records():
        assert "customField02" not in row.data
        for thread, name in enumerate(OWN_FIELDS):
            assert row.data[name] == f"t{thread}-{row.key}", (row.key, row.data)
    assert api.records().count() == 20


def test_concurrent_requests_mixing_existing_and_new_keys_do_not_deadlock(integrators):
    """Half the keys exist, half are new, every thread sends them in its own order, three
    times: keys go from new to existing while other requests hold row locks, which is
    where a request locking only existing rows could deadlock with an inserting one."""
    api = integrators[0]
    api.post([api.entry(key, customField01="seed") for key in KEYS[::2]])

    def batches(thread: int) -> list[list[dict]]:
        requests = []
        for round_ in range(3):
            keys = KEYS[:]
            random.Random(1000 * thread + round_).shuffle(keys)
            requests.append([api.entry(k, **{OWN_FIELDS[thread]: f"t{thread}-{k}"}) for k in keys])
        return requests

    answers = _run_together(integrators, [batches(i) for i in range(THREADS)])

    results = _stored_results(answers)
    created = Counter(r["refId"] for r in results if r["action"] == "created")
    assert created == Counter(dict.fromkeys(KEYS[1::2], 1))
    for row in api.records():
        for thread, name in enumerate(OWN_FIELDS):
            assert row.data[name] == f"t{thread}-{row.key}", (row.key, row.data)
    assert api.records().count() == 20


def test_many_concurrent_requests_and_reads_all_succeed(integrators, tenant_a, settings):
    """Four threads, fifteen requests each, writes and reads interleaved: every request
    answers 200 (on SQLite: no "database is locked"), every write is stored."""
    settings.CDP_INGEST_RATE_LIMITS = [(1_000_000, 1)]  # one key: not what is tested here
    api = integrators[0]

    def work(thread: int) -> list[int]:
        statuses = []
        client = integrators[thread]
        try:
            for n in range(15):
                key = f"M-{thread}-{n}"
                statuses.append(client.post([client.entry(key, customFieldLong01=n)]).status_code)
                shared = client.post([client.entry("SHARED", **{OWN_FIELDS[thread]: str(n)})])
                statuses.append(shared.status_code)
                read = client.client.get(
                    f"/dhub-i/api/v1.0/records/custom-model/{key}",
                    {"momCode": tenant_a.mom_code},
                    headers={"TOKEN": client.token, "API_KEY": client.tenant.raw_key},
                )
                statuses.append(read.status_code)
            return statuses
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = [s for f in [pool.submit(work, i) for i in range(4)] for s in f.result(120)]

    assert Counter(statuses) == Counter({200: 4 * 15 * 3})
    assert api.records().count() == 4 * 15 + 1
    assert {api.data("SHARED")[OWN_FIELDS[t]] for t in range(4)} == {"14"}
