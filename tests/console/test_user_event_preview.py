"""The User Event page's "Preview on real records": the form as posted (saved settings or
changes not saved yet) judged on the model's records, nothing saved; viewers and other
organizations refused."""

from __future__ import annotations

import json

from journeys.models import JourneyEventConfig, UserEvent
from tests.console.conftest import form_data, url, user_event_create
from tests.journeys.conftest import ingest, member


def _records(client, tenant, token) -> None:
    entries = [
        member(tenant, "R-1", customFieldLongs={"customFieldLong01": 900}),
        member(tenant, "R-2", customFieldLongs={"customFieldLong01": 100}),
    ]
    assert ingest(client, tenant, token, entries).status_code == 200


FILTER = {
    "match": "all",
    "conditions": [{"field": "customFieldLong01", "operator": "gte", "value": 500}],
}


def test_preview_of_unsaved_changes_shows_each_record_and_saves_nothing(
    console, client, admin_a, tenant_a, token_a
):
    _records(client, tenant_a, token_a)
    config = user_event_create(tenant_a)  # no filter: both would fire
    console.force_login(admin_a)
    data = form_data(console.get(url("journeys_journeyeventconfig_change", config.pk)))
    data.update(filters=json.dumps(FILTER), _preview="Preview on real records")

    response = console.post(url("journeys_journeyeventconfig_change", config.pk), data)

    assert response.status_code == 200
    page = response.content.decode()
    assert "1 of 2 would fire" in page and "(with the changes on the form, not saved)" in page
    assert "customFieldLong01 ≥ 500: 900 — yes" in page
    assert "customFieldLong01 ≥ 500: 100 — no" in page
    assert "&quot;eventName&quot;: &quot;membership_created&quot;" in page
    config.refresh_from_db()
    assert config.filters == {} and UserEvent.objects.count() == 0


def test_preview_of_the_saved_settings(console, client, admin_a, tenant_a, token_a):
    _records(client, tenant_a, token_a)
    config = user_event_create(tenant_a, filters=FILTER)
    console.force_login(admin_a)
    data = form_data(console.get(url("journeys_journeyeventconfig_change", config.pk)))
    data["_preview"] = "Preview on real records"

    page = console.post(url("journeys_journeyeventconfig_change", config.pk), data)

    text = page.content.decode()
    assert "1 of 2 would fire" in text and "not saved" not in text


def test_a_viewer_and_another_organization_cannot_preview(
    console, client, viewer_a, admin_b, tenant_a, token_a
):
    config = user_event_create(tenant_a)
    data = {"_preview": "Preview", "event_name": "x"}
    console.force_login(viewer_a)
    assert (
        console.post(url("journeys_journeyeventconfig_change", config.pk), data).status_code == 403
    )
    console.force_login(admin_b)
    assert (
        console.post(url("journeys_journeyeventconfig_change", config.pk), data).status_code == 404
    )
    assert JourneyEventConfig.objects.get(pk=config.pk).event_name == "membership_created"


def test_the_number_of_records_is_chosen_up_to_200(console, client, admin_a, tenant_a, token_a):
    _records(client, tenant_a, token_a)
    config = user_event_create(tenant_a)
    console.force_login(admin_a)
    data = form_data(console.get(url("journeys_journeyeventconfig_change", config.pk)))

    one = console.post(
        url("journeys_journeyeventconfig_change", config.pk),
        {**data, "_preview": "Preview", "_preview_limit": "1"},
    )
    many = console.post(
        url("journeys_journeyeventconfig_change", config.pk),
        {**data, "_preview": "Preview", "_preview_limit": "5000"},
    )

    assert len(one.context["preview"].records) == 1
    assert len(many.context["preview"].records) == 2  # all there are; at most 200
    assert "1 of 1 would fire" in one.content.decode()


# --- Backfill from the User Event's page ---------------------------------------------------


def test_backfill_shows_the_count_and_a_sample_then_queues_the_run(
    console, client, admin_a, tenant_a, token_a
):
    from io import StringIO

    from django.core.management import call_command

    _records(client, tenant_a, token_a)
    config = user_event_create(tenant_a, filters=FILTER)
    console.force_login(admin_a)
    page = console.get(url("journeys_journeyeventconfig_change", config.pk)).content.decode()
    backfill_url = url("user_event_backfill", config.pk)
    assert f'href="{backfill_url}"' in page

    confirm = console.get(backfill_url)
    text = confirm.content.decode()
    assert "1 event would be generated" in text and "R-1" in text and "R-2" not in text
    assert UserEvent.objects.count() == 0  # counting writes nothing

    response = console.post(backfill_url)
    assert response.status_code == 302
    call_command("run_worker", "--once", stdout=StringIO())

    assert [e.source_id for e in UserEvent.objects.filter(config=config)] == ["R-1"]
    page = console.get(url("journeys_journeyeventconfig_change", config.pk)).content.decode()
    assert "Last backfill:" in page and "1 events generated" in page


def test_backfill_is_refused_to_viewers_other_organizations_and_changed_user_events(
    console, client, viewer_a, admin_a, admin_b, tenant_a, token_a
):
    config = user_event_create(tenant_a)
    changed = user_event_create(tenant_a, trigger="Changed")
    console.force_login(viewer_a)
    assert console.get(url("user_event_backfill", config.pk)).status_code == 403
    console.force_login(admin_b)
    assert console.get(url("user_event_backfill", config.pk)).status_code == 404
    console.force_login(admin_a)
    refused = console.get(url("user_event_backfill", changed.pk), follow=True)
    assert "only a Created User Event can be backfilled" in refused.content.decode()
    assert UserEvent.objects.count() == 0
