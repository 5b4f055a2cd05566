"""The Console's side of `?dryRun=true` and `Idempotency-Key`: the Data Ingestion API tab's
"Dry run" button plans a payload, shows what each entry would change and the event it
would generate, and stores nothing; the Ingestion log shows a request's Idempotency-Key
and its replays, and finds a request by its exact key, in the member's organization only."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime

from django.contrib.admin.utils import display_for_value
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cdp.models import EntityRecord
from ingestion.models import IngestionRequest
from journeys.models import UserEvent
from tests.console.conftest import console_member, url, user_event_create
from tests.ingestion.conftest import ingest_for

DRY_RUN = {"dry_run": "Dry run"}  # what the browser sends for the "Dry run" button


def _counts() -> tuple[int, int, int]:
    return (
        EntityRecord.objects.count(),
        UserEvent.objects.count(),
        IngestionRequest.objects.count(),
    )


def _payload(tenant, config, entries) -> str:
    return json.dumps(
        {
            "objectType": "custom-model",
            "source": "Console",
            "jeConfigId": config.config_id if config else None,
            "entries": entries,
        }
    )


def _post(console, tenant, payload: str, **extra):
    return console.post(
        url("cdp_datamodel_test_ingest", tenant.model.pk),
        {"api_key": tenant.api_key.pk, "payload": payload, **extra},
    )


def _between(page: str, start: str, end: str) -> str:
    return page.split(start, 1)[1].split(end, 1)[0]


def _rows(page: str) -> list[str]:
    table = _between(page, 'id="dry-run-table"', "</table>")
    return re.findall(r'<tr class="dry-run-entry.*?</tr>', table, re.DOTALL)


def _text(fragment: str) -> str:
    """The visible text of an HTML fragment, its whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


# --- Dry run on the Data Ingestion API tab --------------------------------------------


def test_the_tab_offers_a_dry_run_beside_send_and_says_what_it_does(console, admin_a, tenant_a):
    console.force_login(admin_a)

    page = console.get(url("cdp_datamodel_change", tenant_a.model.pk)).content.decode()

    form = _between(page, 'id="test-ingest-form"', "</form>")
    assert 'value="Send" id="send-test-payload"' in form
    assert '<input type="submit" name="dry_run" value="Dry run" id="dry-run-test-payload"' in form
    help_text = _text(_between(page, 'id="test-ingest-help">', "</p>"))
    assert "Dry run plans it without storing anything" in help_text
    assert "writes no record, event or Ingestion log entry" in help_text


def test_a_dry_run_shows_changes_and_events_and_stores_nothing(console, admin_a, tenant_a):
    # Fires when a record is created, its value taken from customFieldLong01.
    config = user_event_create(
        tenant_a, update_values=[{"target": "value", "field": "customFieldLong01"}]
    )
    console.force_login(admin_a)
    stored = _post(
        console,
        tenant_a,
        _payload(
            tenant_a,
            None,
            [
                {
                    "momCode": tenant_a.mom_code,
                    "refId": "R-1",
                    "customFieldTexts": {"customField01": "silver"},
                }
            ],
        ),
    )
    assert stored.context["result"].body["created"] == 1
    cdp_id = EntityRecord.objects.get(organization=tenant_a.organization, key="R-1").cdp_id
    before = _counts()
    entries = [
        {
            "momCode": tenant_a.mom_code,
            "refId": "R-1",
            "customFieldTexts": {"customField01": "gold"},
            "customFieldLongs": {"customFieldLong01": 5},
        },
        {
            "momCode": tenant_a.mom_code,
            "refId": "R-2",
            "customerId": "C-42",
            "customFieldLongs": {"customFieldLong01": 150},
        },
        {"refId": "R-3"},
    ]

    response = _post(console, tenant_a, _payload(tenant_a, config, entries), **DRY_RUN)

    assert _counts() == before
    assert EntityRecord.objects.get(key="R-1").data["customField01"] == "silver"
    body = response.context["result"].body
    assert body["dryRun"] is True
    page = response.content.decode()
    assert '<h2 id="dry-run-heading">Dry run: nothing was stored</h2>' in page
    assert _text(_between(page, '<p id="dry-run-summary">', "</p>")) == (
        "Of 3 entries: 1 would be created, 1 updated, 0 unchanged, 1 rejected; "
        "1 event would be generated."
    )
    updated, created, rejected = (_text(row) for row in _rows(page))
    # The stored record: its changes, from → to (a field it did not have: a dash).
    assert updated.startswith(f"0 R-1 would be updated {cdp_id} ")
    assert "customField01 : silver → gold" in updated
    assert "customFieldLong01 : — → 5" in updated
    # The new record: its fields and the event it would generate.
    event = body["results"][1]["event"]
    event_at = datetime.fromtimestamp(event["eventAt"] / 1000, tz=UTC)
    assert created.startswith("1 R-2 would be created ")
    assert "customerId : — → C-42" in created
    assert "eventName membership_created" in created
    assert "condition Created" in created
    assert f"eventAt {event_at:%Y-%m-%d %H:%M:%S}." in created and " UTC " in created
    assert "customerId C-42" in created
    assert f"jeConfigId {config.config_id}" in created
    assert "value 150 " in created  # 150.0 on the wire
    # The rejected entry: its message, no changes, no event.
    assert rejected == "2 R-3 Rejected: Missing momCode — —"
    # The raw answer is still shown, and the dry run is not offered as a log entry.
    shown = _between(page, '<pre id="test-ingest-response" class="copy-source">', "</pre>")
    assert json.loads(html.unescape(shown)) == body
    assert 'id="test-ingest-log-link"' not in page
    assert "a dry run: not in the Ingestion log" in page


def test_send_after_a_dry_run_stores_what_the_dry_run_said(console, admin_a, tenant_a):
    config = user_event_create(tenant_a)
    console.force_login(admin_a)
    payload = _payload(tenant_a, config, [{"momCode": tenant_a.mom_code, "refId": "R-1"}])

    planned = _post(console, tenant_a, payload, **DRY_RUN).context["result"].body
    assert _counts() == (0, 0, 0)
    sent = _post(console, tenant_a, payload)

    body = sent.context["result"].body
    assert "dryRun" not in body and body["created"] == planned["created"] == 1
    assert body["events"] == planned["events"] == {"generated": 1, "suppressed": 0, "dropped": 0}
    assert _counts() == (1, 1, 1)
    assert planned["results"][0]["cdpId"] is None
    assert body["results"][0]["cdpId"] == EntityRecord.objects.get().cdp_id
    page = sent.content.decode()
    assert 'id="dry-run-result"' not in page and "nothing was stored" not in page
    assert 'id="test-ingest-log-link"' in page


def test_a_dry_run_of_an_unchanged_record_and_with_init_data(console, admin_a, tenant_a):
    config = user_event_create(tenant_a)
    console.force_login(admin_a)
    entry = {
        "momCode": tenant_a.mom_code,
        "refId": "R-1",
        "customFieldTexts": {"customField01": "a"},
    }
    _post(console, tenant_a, _payload(tenant_a, None, [entry]))
    new = {"momCode": tenant_a.mom_code, "refId": "R-2"}
    before = _counts()

    response = _post(
        console, tenant_a, _payload(tenant_a, config, [entry, new]), init_data="on", **DRY_RUN
    )

    assert _counts() == before
    page = response.content.decode()
    assert _text(_between(page, '<p id="dry-run-summary">', "</p>")) == (
        "Of 2 entries: 1 would be created, 0 updated, 1 unchanged; "
        "0 events would be generated, 1 suppressed."
    )
    unchanged, created = (_text(row) for row in _rows(page))
    assert unchanged.startswith("0 R-1 would be unchanged ") and unchanged.endswith(" no change —")
    assert created.startswith("1 R-2 would be created ") and created.endswith(" —")  # no event


def test_a_refused_dry_run_says_so_and_is_not_logged(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = _post(console, tenant_a, "{not json", **DRY_RUN)

    assert response.context["result"].body["errorCode"] == "INVALID_JSON"
    page = response.content.decode()
    assert "Dry run: nothing was stored" in page
    assert "The request would be refused:" in _text(_between(page, 'id="dry-run-refused">', "</p>"))
    assert 'id="dry-run-table"' not in page
    assert not IngestionRequest.objects.exists()  # a sent refusal is logged; a dry run's is not


def test_a_dry_runs_values_are_escaped(console, admin_a, tenant_a):
    console.force_login(admin_a)
    entry = {
        "momCode": tenant_a.mom_code,
        "refId": "<b>R-1</b>",
        "customFieldTexts": {"customField02": '<script>alert("x")</script>'},
    }

    page = _post(console, tenant_a, _payload(tenant_a, None, [entry]), **DRY_RUN).content.decode()

    table = _between(page, 'id="dry-run-table"', "</table>")
    assert "<script>" not in page and "<b>R-1</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in table
    assert "&lt;b&gt;R-1&lt;/b&gt;" in table


def test_another_organizations_member_cannot_dry_run_on_a_model(
    console, admin_a, admin_b, tenant_a, tenant_b
):
    payload = _payload(tenant_a, None, [{"momCode": tenant_a.mom_code, "refId": "INTRUDER"}])
    console.force_login(admin_b)

    with_own_key = _post(console, tenant_b, payload, **DRY_RUN)  # B's key, A's momCode
    on_a_model = console.post(
        url("cdp_datamodel_test_ingest", tenant_a.model.pk),
        {"api_key": tenant_b.api_key.pk, "payload": payload, **DRY_RUN},
    )

    assert on_a_model.status_code == 404
    assert "dry-run-result" not in on_a_model.content.decode()
    # Through B's own model, A's model is not found: the entry is rejected, nothing planned.
    page = with_own_key.content.decode()
    assert with_own_key.context["result"].body["failed"] == 1
    assert _text(_rows(page)[0]).startswith("0 INTRUDER Rejected:")
    viewer = console_member(tenant_a, "viewer@acme.test", "viewer")
    console.force_login(viewer)
    by_a_viewer = console.post(
        url("cdp_datamodel_test_ingest", tenant_a.model.pk),
        {"api_key": tenant_a.api_key.pk, "payload": payload, **DRY_RUN},
    )
    assert by_a_viewer.status_code == 403
    assert _counts() == (0, 0, 0)


# --- The Ingestion log: Idempotency-Key and replays -----------------------------------


def _keyed(api, key: str | None, ref_id: str = "R-1"):
    headers = {"TOKEN": api.token, "API_KEY": api.tenant.raw_key}
    if key is not None:
        headers["Idempotency-Key"] = key
    return api.post([api.entry(ref_id)], headers=headers)


def test_a_requests_page_shows_its_key_and_replays(console, admin_a, tenant_a):
    api = ingest_for(tenant_a)
    first = _keyed(api, "order-42-upsert")
    retries = [_keyed(api, "order-42-upsert") for _ in range(2)]
    unkeyed = _keyed(api, None, "R-2")
    assert first.status_code == 200
    assert [r["Idempotent-Replayed"] for r in retries] == ["true", "true"]
    assert {r.json()["requestId"] for r in retries} == {first.json()["requestId"]}
    logged = IngestionRequest.objects.get(request_id=first.json()["requestId"])
    assert (logged.idempotency_key, logged.replays) == ("order-42-upsert", 2)
    assert IngestionRequest.objects.count() == 2  # a replay adds no row of its own
    console.force_login(admin_a)

    page = console.get(url("ingestion_ingestionrequest_change", logged.pk)).content.decode()

    key_row = _text(_between(page, '<div class="form-row field-idempotency_key">', "</div>\n"))
    assert key_row == "Idempotency-Key: order-42-upsert"
    replayed = _text(_between(page, '<div class="form-row field-replayed">', "</div>\n"))
    last_at = display_for_value(logged.last_replayed_at, "—")
    assert replayed == f"Replayed: 2 times (last at {last_at})"
    # A request sent without a key shows neither.
    plain = IngestionRequest.objects.get(request_id=unkeyed.json()["requestId"])
    page = console.get(url("ingestion_ingestionrequest_change", plain.pk)).content.decode()
    assert "field-idempotency_key" not in page and "Replayed" not in page


def test_a_keyed_request_never_replayed_says_so(console, admin_a, tenant_a):
    api = ingest_for(tenant_a)
    request_id = _keyed(api, "once-only").json()["requestId"]
    logged = IngestionRequest.objects.get(request_id=request_id)
    console.force_login(admin_a)

    page = console.get(url("ingestion_ingestionrequest_change", logged.pk)).content.decode()

    replayed = _text(_between(page, '<div class="form-row field-replayed">', "</div>\n"))
    assert replayed == "Replayed: 0 times"


def test_the_log_finds_a_request_by_its_exact_key_in_the_members_organization_only(
    console, admin_a, admin_b, tenant_a, tenant_b
):
    api_a, api_b = ingest_for(tenant_a), ingest_for(tenant_b)
    wanted = _keyed(api_a, "order-42").json()["requestId"]
    _keyed(api_a, "order-420", "R-2")
    _keyed(api_a, None, "R-3")
    other_org = _keyed(api_b, "order-42").json()["requestId"]  # the same key, B's own
    changelist = url("ingestion_ingestionrequest_changelist")
    console.force_login(admin_a)

    with CaptureQueriesContext(connection) as queries:
        found = console.get(changelist, {"q": "order-42"})
    # Read now: the next request clears the connection's query log.
    searched = [
        q["sql"] for q in queries.captured_queries if "ingestion_ingestionrequest" in q["sql"]
    ]
    by_prefix = console.get(changelist, {"q": "order-4"})

    assert [r.request_id for r in found.context["cl"].result_list] == [wanted]
    listing = _between(found.content.decode(), 'id="result_list"', "</table>")
    assert wanted in listing and other_org not in listing
    assert list(by_prefix.context["cl"].result_list) == []
    assert "Search by requestId, or by an Idempotency-Key (exactly as sent)" in (
        found.content.decode()
    )
    # The key is compared for equality, never with LIKE (which no index serves).
    assert any('"idempotency_key" = ' in sql for sql in searched), searched
    assert not [sql for sql in searched if re.search(r'"idempotency_key"\)? I?LIKE', sql)]
    # B's admin finds B's request under the same key, and never A's.
    console.force_login(admin_b)
    found_b = console.get(changelist, {"q": "order-42"})
    assert [r.request_id for r in found_b.context["cl"].result_list] == [other_org]
    assert wanted not in found_b.content.decode()
