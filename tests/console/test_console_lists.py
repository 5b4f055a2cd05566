"""The Console's lists in its own words: the Ingestion log's source and API key filters,
"Export CSV" of the Event log and of records, times with their zone, the Organization menu
entry, and the favicon. Two organizations everywhere: nothing of the other one shows."""

from __future__ import annotations

import csv
import io
import json
import uuid

from django.contrib.staticfiles import finders

from cdp import services
from cdp.models import EntityRecord
from ingestion.console import console_ingest
from journeys.models import UserEvent
from tests.console.conftest import url, user_event_create


def _send(tenant, entries, *, source="CRM", **body):
    return console_ingest(
        api_key=tenant.api_key,
        body=json.dumps(
            {"objectType": "custom-model", "source": source, "entries": entries, **body}
        ),
        init_data=False,
        request_id=uuid.uuid4().hex,
    )


def _choices(response, title):
    spec = next(s for s in response.context["cl"].filter_specs if s.title == title)
    return [choice["display"] for choice in spec.choices(response.context["cl"])]


def _csv(response):
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_log_filters_by_its_organizations_sources_and_keys_only(
    console, admin_a, tenant_a, tenant_b
):
    _send(tenant_a, [{"momCode": tenant_a.mom_code, "refId": "R-1"}], source="POS-HANOI")
    _send(tenant_a, [{"momCode": tenant_a.mom_code, "refId": "R-2"}], source="CRM")
    _send(tenant_b, [{"momCode": tenant_b.mom_code, "refId": "R-3"}], source="GLOBEX-ERP")
    services.api_key_create(membership=tenant_b.membership, name="globex-secret")
    console.force_login(admin_a)
    changelist = url("ingestion_ingestionrequest_changelist")

    everything = console.get(changelist)
    by_source = console.get(changelist, {"source": "POS-HANOI"})
    by_key = console.get(changelist, {"api_key": tenant_a.api_key.pk})
    other_key = console.get(changelist, {"api_key": tenant_b.api_key.pk})

    assert _choices(everything, "source")[1:] == ["CRM", "POS-HANOI"]
    assert _choices(everything, "API key")[1:] == [f"{tenant_a.api_key.prefix}… ingest"]
    assert [r.source for r in by_source.context["cl"].result_list] == ["POS-HANOI"]
    assert by_key.context["cl"].result_list.count() == 2
    assert other_key.context["cl"].result_list.count() == 0
    page = everything.content.decode()
    assert "GLOBEX-ERP" not in page and "globex-secret" not in page
    # The Console's words and times with their zone.
    assert "By initial load" in page and "Init data" not in page
    assert " UTC</td>" in page


def test_the_event_log_exports_the_filtered_events_of_the_organization(
    console, admin_a, tenant_a, tenant_b
):
    config_a = user_event_create(tenant_a)
    config_b = user_event_create(tenant_b)
    _send(tenant_a, [{"momCode": tenant_a.mom_code, "refId": "R-1"}], jeConfigId=config_a.config_id)
    _send(tenant_a, [{"momCode": tenant_a.mom_code, "refId": "R-2"}], jeConfigId=config_a.config_id)
    _send(tenant_b, [{"momCode": tenant_b.mom_code, "refId": "R-9"}], jeConfigId=config_b.config_id)
    console.force_login(admin_a)
    changelist = url("journeys_userevent_changelist")

    listed = console.get(changelist, {"q": "R-2"}).content.decode()
    rows = _csv(console.get(url("journeys_userevent_export"), {"q": "R-2"}))
    everything = _csv(console.get(url("journeys_userevent_export")))

    assert f'href="{url("journeys_userevent_export")}?q=R-2"' in listed
    assert "Category" in listed and "Event ctg" not in listed
    assert rows[0][:4] == ["eventId", "eventName", "source", "sourceId"]
    event = UserEvent.objects.get(organization=tenant_a.organization, source_id="R-2")
    assert rows[1:] == [
        [
            event.event_id,
            "membership_created",
            tenant_a.mom_code,
            "R-2",
            "Created",
            event.event_at.isoformat(),
            event.channel,
            "UserIdentity",
            "",
            "",
            "",
            "",
            "",
            config_a.config_id,
            event.request_id,
        ]
    ]
    assert sorted(row[3] for row in everything[1:]) == ["R-1", "R-2"]


def test_a_models_records_export_holds_only_the_organizations_records(
    console, admin_a, tenant_a, tenant_b
):
    _send(tenant_a, [{"momCode": tenant_a.mom_code, "refId": "R-1", "email": "a@acme.test"}])
    _send(tenant_b, [{"momCode": tenant_b.mom_code, "refId": "R-1", "email": "b@globex.test"}])
    console.force_login(admin_a)

    rows = _csv(console.get(url("cdp_entityrecord_export"), {"data_model": tenant_a.model.pk}))
    other = _csv(console.get(url("cdp_entityrecord_export"), {"data_model": tenant_b.model.pk}))

    record = EntityRecord.objects.get(organization=tenant_a.organization, key="R-1")
    assert rows[0] == [
        "key",
        "cdpId",
        "customerId",
        "email",
        "phone",
        "source",
        "updatedAt",
        "model",
        "organization",
    ]
    assert rows[1:] == [
        [
            "R-1",
            record.cdp_id,
            "",
            "a@acme.test",
            "",
            "CRM",
            record.updated_at.isoformat(),
            str(tenant_a.model),
            "Acme Retail",
        ]
    ]
    assert other[1:] == []  # another organization's model is none of the member's


def test_the_export_stops_at_its_cap_and_says_so(tenant_a, monkeypatch):
    from cdp import console_columns

    for n in range(3):
        _send(tenant_a, [{"momCode": tenant_a.mom_code, "refId": f"R-{n}"}])
    rows = list(
        csv.reader(
            console_columns.csv_rows(
                EntityRecord.objects.order_by("key"), [("key", lambda r: r.key)], cap=2
            )
        )
    )
    assert rows == [
        ["key"],
        ["R-0"],
        ["R-1"],
        ["# Stopped at 2 rows: narrow the filters to export the rest."],
    ]


def test_the_organization_entry_opens_a_single_members_organization(
    console, admin_a, superuser, tenant_a, tenant_b
):
    changelist = url("cdp_organization_changelist")
    console.force_login(admin_a)
    single = console.get(changelist)
    assert single.status_code == 302
    assert single["Location"] == url("cdp_organization_change", tenant_a.organization.pk)

    services.member_add(organization=tenant_b.organization, user=admin_a, role="viewer")
    several = console.get(changelist)
    assert several.status_code == 200
    assert several.context["cl"].result_count == 2

    console.force_login(superuser)
    assert console.get(changelist).status_code == 200


def test_every_page_links_a_favicon_that_is_served(console, admin_a):
    console.force_login(admin_a)
    page = console.get(url("index")).content.decode()
    assert '<link rel="icon" href="/static/console/favicon.svg"' in page
    # Served as every static file is (the browser test fetches it from the live server).
    assert finders.find("console/favicon.svg") is not None


def test_favicon_ico_leads_to_the_icon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 301
    assert response["Location"] == "/static/console/favicon.svg"


def test_the_user_event_list_reads_in_words(console, admin_a, tenant_a, tenant_b):
    """The model by its name, the status in words, the long jeConfigId short with Copy."""
    on = user_event_create(tenant_a, event_name="on_a")
    off = user_event_create(tenant_a, event_name="off_a", trigger="Changed")
    off.enabled = False
    off.save(update_fields=["enabled"])
    user_event_create(tenant_b, event_name="on_b")
    console.force_login(admin_a)

    response = console.get(url("journeys_journeyeventconfig_changelist"))

    html = response.content.decode()
    headers = [str(h["text"]).lower() for h in response.context["result_headers"]]
    assert headers[1:] == [  # upper-cased by the style sheet
        "event name",
        "model",
        "trigger when",
        "channel",
        "category",
        "status",
        "id (jeconfigid)",
        "created at",
    ]
    rows = {
        config.event_name: [str(cell) for cell in row]
        for config, row in zip(
            response.context["cl"].result_list, response.context["results"], strict=True
        )
    }
    assert set(rows) == {"on_a", "off_a"}
    assert f">{tenant_a.model.name}<" in rows["on_a"][2]
    assert ">Enabled<" in rows["on_a"][6] and ">Disabled<" in rows["off_a"][6]
    assert f'title="{on.config_id}">…{on.config_id[-8:]}</code>' in rows["on_a"][7]
    assert f'data-copy-target="config-id-{on.pk}"' in rows["on_a"][7]
    assert "on_b" not in html


def test_an_events_page_names_its_fields_in_the_consoles_words(console, admin_a, tenant_a):
    config = user_event_create(tenant_a, event_name="joined")
    _send(
        tenant_a,
        [{"momCode": tenant_a.mom_code, "refId": "R-1"}],
        jeConfigId=config.config_id,
        jeEventKey=config.event_key,
    )
    event = UserEvent.objects.get(organization=tenant_a.organization)
    console.force_login(admin_a)

    html = console.get(url("journeys_userevent_change", event.pk)).content.decode()
    changelist = console.get(url("journeys_userevent_changelist")).content.decode()

    for label in ("Event ID:", "Source ID:", "Event time:", "Customer ID:", "Request ID:"):
        assert label in html
    assert "Written at:" in html and "Event at" not in html and "Source id" not in html
    assert "By event time" in changelist and "By event at" not in changelist


def test_the_event_log_filters_by_the_organizations_user_events_told_apart(
    console, admin_a, tenant_a, tenant_b
):
    created = user_event_create(tenant_a, event_name="joined")
    changed = user_event_create(tenant_a, event_name="joined", trigger="Changed")
    user_event_create(tenant_b, event_name="theirs")
    console.force_login(admin_a)

    response = console.get(url("journeys_userevent_changelist"))

    assert _choices(response, "User Event") == [
        "All",
        f"joined (Created, …{created.config_id[-8:]})",
        f"joined (Changed, …{changed.config_id[-8:]})",
    ]


def test_user_events_filter_by_status_in_words(console, admin_a, tenant_a, tenant_b):
    user_event_create(tenant_a, event_name="on_a")
    console.force_login(admin_a)

    response = console.get(url("journeys_journeyeventconfig_changelist"))

    assert _choices(response, "status") == ["All", "Enabled", "Disabled"]
    assert "By Enable" not in response.content.decode()
