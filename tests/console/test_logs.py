"""The ingestion log and the event log: read-only, searchable, filtered, and each request's
per-entry results as a table."""

from __future__ import annotations

import json
import uuid

from ingestion.console import console_ingest
from ingestion.models import IngestionRequest
from journeys.models import UserEvent
from tests.console.conftest import url, user_event_create


def _send(tenant, entries, **body):
    return console_ingest(
        api_key=tenant.api_key,
        body=json.dumps(
            {"objectType": "custom-model", "source": "CRM", "entries": entries, **body}
        ),
        init_data=False,
        request_id=uuid.uuid4().hex,
    )


def test_a_requests_page_lists_its_entries_results(console, admin_a, tenant_a):
    response = _send(
        tenant_a,
        [
            {"momCode": tenant_a.mom_code, "refId": "R-1"},
            {"refId": "R-2"},
        ],
    )
    logged = IngestionRequest.objects.get(request_id=response.body["requestId"])
    console.force_login(admin_a)

    page = console.get(url("ingestion_ingestionrequest_change", logged.pk))

    content = page.content.decode()
    assert 'id="ingestion-results-table"' in content
    rows = content.split("<tbody>", 1)[1].split("</tbody>")[0].count('class="entry-result')
    assert rows == 2
    assert "R-1" in content and "created" in content
    assert "Missing momCode" in content
    assert response.body["results"][0]["cdpId"] in content
    assert not page.context["has_change_permission"]
    assert console.post(url("ingestion_ingestionrequest_change", logged.pk), {}).status_code == 403


def test_the_log_is_searched_by_request_id_and_filtered(console, admin_a, tenant_a):
    ok = _send(tenant_a, [{"momCode": tenant_a.mom_code, "refId": "R-1"}])
    refused = _send(tenant_a, [{"momCode": "M-AAAAA-O-AAAAA-M", "refId": "R-1"}])
    console.force_login(admin_a)
    changelist = url("ingestion_ingestionrequest_changelist")

    found = console.get(changelist, {"q": ok.body["requestId"]})
    by_status = console.get(changelist, {"status": "400"})
    by_type = console.get(changelist, {"object_type": "custom-model"})

    assert [r.request_id for r in found.context["cl"].result_list] == [ok.body["requestId"]]
    assert [r.request_id for r in by_status.context["cl"].result_list] == [
        refused.body["requestId"]
    ]
    assert by_type.context["cl"].result_list.count() == 2
    assert "Search by requestId" in found.content.decode()
    assert console.get(url("ingestion_ingestionrequest_add")).status_code == 403


def test_the_event_log_filters_by_name_source_and_searches_by_source_id(
    console, admin_a, tenant_a, tenant_b
):
    config = user_event_create(tenant_a)
    _send(
        tenant_a,
        [
            {"momCode": tenant_a.mom_code, "refId": "R-1"},
            {"momCode": tenant_a.mom_code, "refId": "R-2"},
        ],
        jeConfigId=config.config_id,
    )
    other = user_event_create(tenant_b, event_name="globex_only")
    _send(tenant_b, [{"momCode": tenant_b.mom_code, "refId": "R-1"}], jeConfigId=other.config_id)
    console.force_login(admin_a)
    changelist = url("journeys_userevent_changelist")

    everything = console.get(changelist)
    by_name = console.get(changelist, {"event_name": "membership_created"})
    by_source = console.get(changelist, {"source": tenant_a.mom_code})
    searched = console.get(changelist, {"q": "R-2"})

    assert {e.source_id for e in everything.context["cl"].result_list} == {"R-1", "R-2"}
    assert by_name.context["cl"].result_list.count() == 2
    assert by_source.context["cl"].result_list.count() == 2
    assert [e.source_id for e in searched.context["cl"].result_list] == ["R-2"]
    assert "globex_only" not in everything.content.decode()
    assert "Search by sourceId" in everything.content.decode()
    event = UserEvent.objects.filter(organization=tenant_a.organization).first()
    detail = console.get(url("journeys_userevent_change", event.pk))
    assert detail.status_code == 200 and event.event_id in detail.content.decode()
    assert not detail.context["has_change_permission"]


def test_the_event_log_offers_a_time_range(console, admin_a, tenant_a):
    config = user_event_create(tenant_a)
    _send(tenant_a, [{"momCode": tenant_a.mom_code, "refId": "R-1"}], jeConfigId=config.config_id)
    event = UserEvent.objects.get()
    console.force_login(admin_a)
    changelist = url("journeys_userevent_changelist")

    this_year = console.get(changelist, {"event_at__year": event.event_at.year})
    other_year = console.get(changelist, {"event_at__year": event.event_at.year - 1})

    assert this_year.context["cl"].result_list.count() == 1
    assert other_year.context["cl"].result_list.count() == 0
    page = this_year.content.decode()
    assert '<nav class="toplinks">' in page and 'class="date-back"' in page
    # The time filter in the sidebar too (today, past 7 days, this month, this year).
    assert "Past 7 days" in page
