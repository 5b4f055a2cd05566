"""Change-aware User Events in the Console: a Changed User Event's Filter and Update Values
may read a field's value before the write (`previous.<field>`) and ask whether the write
changed a field (`changed`, `not_changed`); the form stores them through the services, a
Created User Event is refused with the service's message on the row, and the schema JSON
the row editors read says what to offer for which trigger."""

from __future__ import annotations

import html
import json
import re

from journeys.models import JourneyEventConfig
from tests.console.conftest import form_data, url, user_event_create

CHANGE_FILTER = {
    "match": "all",
    "conditions": [
        {"field": "previous.customField01", "operator": "eq", "value": "silver"},
        {"field": "customField01", "operator": "eq", "value": "gold"},
        {"field": "customFieldLong01", "operator": "changed"},
        {"field": "customFieldBool01", "operator": "not_changed"},
    ],
}
CHANGE_UPDATES = [
    {"target": "properties.previousTier", "field": "previous.customField01"},
    {"target": "value", "field": "previous.customFieldLong01"},
    {"target": "note", "field": "customField01"},
]
CHANGED_ONLY = "applies to Changed User Events only"


def _add_data(tenant, **overrides):
    data = {
        "data_model": tenant.model.pk,
        "trigger": "Changed",
        "event_name": "tier_upgraded",
        "event_time": "ingested",
        "channel": "Online",
        "category": "UserIdentity",
        "sub_category": "",
        "filters": json.dumps(CHANGE_FILTER),
        "update_values": json.dumps(CHANGE_UPDATES),
        "enabled": "on",
    }
    data.update(overrides)
    return data


def _page_schema(page: str) -> dict:
    """The #user-event-schema JSON as the page carries it to console/user_event_form.js."""
    match = re.search(
        r'<script id="user-event-schema" type="application/json">(.*?)</script>', page, re.S
    )
    assert match, "no #user-event-schema in the page"
    return json.loads(match.group(1))


def _row_errors(page: str, editor: str) -> dict[str, list[str]]:
    """The errors by path the page hands to a row editor (`filter` or `update`): the
    script shows each on the row its path names."""
    match = re.search(
        rf'<div class="rows-editor" id="{editor}-editor"[^>]*data-errors="([^"]*)"', page
    )
    assert match, f"no #{editor}-editor in the page"
    return json.loads(html.unescape(match.group(1)))


def test_a_changed_user_event_stores_previous_fields_and_change_operators(
    console, admin_a, tenant_a
):
    console.force_login(admin_a)

    response = console.post(url("journeys_journeyeventconfig_add"), _add_data(tenant_a))

    assert response.status_code == 302, response.context["adminform"].form.errors
    config = JourneyEventConfig.objects.get(organization=tenant_a.organization)
    assert config.trigger == "Changed"
    assert config.filters == CHANGE_FILTER
    assert config.update_values == CHANGE_UPDATES
    # The change form shows them again, as rows of the same JSON.
    page = console.get(response["Location"])
    form = page.context["adminform"].form
    assert json.loads(form["filters"].value()) == CHANGE_FILTER
    assert json.loads(form["update_values"].value()) == CHANGE_UPDATES


def test_a_changed_user_events_change_form_stores_them(console, admin_a, tenant_a):
    config = user_event_create(tenant_a, trigger="Changed")
    console.force_login(admin_a)
    change_url = url("journeys_journeyeventconfig_change", config.pk)
    data = form_data(console.get(change_url))
    data.update(filters=json.dumps(CHANGE_FILTER), update_values=json.dumps(CHANGE_UPDATES[:1]))

    response = console.post(change_url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    config.refresh_from_db()
    assert config.filters == CHANGE_FILTER
    assert config.update_values == CHANGE_UPDATES[:1]


def test_a_created_user_event_is_refused_with_the_message_on_each_row(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = console.post(
        url("journeys_journeyeventconfig_add"), _add_data(tenant_a, trigger="Created")
    )

    assert response.status_code == 200
    assert not JourneyEventConfig.objects.exists()
    page = response.content.decode()
    filter_errors = _row_errors(page, "filter")
    assert filter_errors == {
        "filter.conditions[0].field": [f"previous.customField01: previous.<field> {CHANGED_ONLY}"],
        "filter.conditions[2].operator": [f"'changed' {CHANGED_ONLY}"],
        "filter.conditions[3].operator": [f"'not_changed' {CHANGED_ONLY}"],
    }
    update_errors = _row_errors(page, "update")
    assert update_errors == {
        "updateValues[0].field": [f"previous.customField01: previous.<field> {CHANGED_ONLY}"],
        "updateValues[1].field": [f"previous.customFieldLong01: previous.<field> {CHANGED_ONLY}"],
    }
    # The rows come back as they were posted, for the editor to show them again.
    form = response.context["adminform"].form
    assert json.loads(form["filters"].value()) == CHANGE_FILTER
    assert json.loads(form["update_values"].value()) == CHANGE_UPDATES


def test_a_created_user_events_change_form_refuses_them(console, admin_a, tenant_a):
    config = user_event_create(tenant_a, trigger="Created")
    console.force_login(admin_a)
    change_url = url("journeys_journeyeventconfig_change", config.pk)
    data = form_data(console.get(change_url))
    data.update(filters=json.dumps(CHANGE_FILTER))

    response = console.post(change_url, data)

    assert response.status_code == 200
    errors = _row_errors(response.content.decode(), "filter")
    assert set(errors) == {
        "filter.conditions[0].field",
        "filter.conditions[2].operator",
        "filter.conditions[3].operator",
    }
    assert all(CHANGED_ONLY in message for messages in errors.values() for message in messages)
    config.refresh_from_db()
    assert config.filters == {}


def test_a_change_operator_on_a_previous_value_is_refused_on_its_row(console, admin_a, tenant_a):
    console.force_login(admin_a)
    bad = {
        "match": "all",
        "conditions": [{"field": "previous.customField01", "operator": "changed"}],
    }

    response = console.post(
        url("journeys_journeyeventconfig_add"),
        _add_data(tenant_a, filters=json.dumps(bad), update_values="[]"),
    )

    assert response.status_code == 200
    assert not JourneyEventConfig.objects.exists()
    assert _row_errors(response.content.decode(), "filter") == {
        "filter.conditions[0].operator": [
            "'changed' applies to a field, not to its previous value (use customField01)"
        ]
    }


def test_the_schema_offers_previous_fields_and_change_operators_for_changed_triggers(
    console, admin_a, tenant_a
):
    console.force_login(admin_a)

    page = console.get(url("journeys_journeyeventconfig_add")).content.decode()

    schema = _page_schema(page)
    # The add form's trigger is its select: the schema names none.
    assert schema["trigger"] is None
    assert schema["changeAwareTriggers"] == ["Changed"]
    assert schema["previousPrefix"] == "previous."
    assert schema["changeOperators"] == ["changed", "not_changed"]
    assert {"changed", "not_changed"} <= set(schema["valuelessOperators"])
    for operators in schema["operatorsByType"].values():
        assert {"changed", "not_changed"} <= set(operators)
    # Words for every operator, the change operators' among them.
    assert schema["operatorLabels"]["changed"] == "changed"
    assert schema["operatorLabels"]["not_changed"] == "did not change"
    # The fields whose previous values the editor offers: the model's, with their labels.
    fields = {f["name"]: f["label"] for f in schema["models"][str(tenant_a.model.pk)]["fields"]}
    assert fields["customField01"] == "Tier"
    assert 'id="id_trigger"' in page
    assert "/static/console/user_event_form.css" in page


def test_a_change_forms_schema_names_its_fixed_trigger(console, admin_a, tenant_a):
    changed = user_event_create(tenant_a, trigger="Changed")
    created = user_event_create(tenant_a, trigger="Created", event_name="member_created")
    console.force_login(admin_a)

    changed_page = console.get(url("journeys_journeyeventconfig_change", changed.pk))
    created_page = console.get(url("journeys_journeyeventconfig_change", created.pk))

    assert _page_schema(changed_page.content.decode())["trigger"] == "Changed"
    assert _page_schema(created_page.content.decode())["trigger"] == "Created"
    # The trigger is read-only there: the script reads it from the schema.
    assert 'id="id_trigger"' not in changed_page.content.decode()


def test_another_organizations_changed_user_event_stays_out_of_reach(
    console, admin_a, tenant_a, tenant_b
):
    theirs = user_event_create(tenant_b, trigger="Changed", filters=CHANGE_FILTER)
    console.force_login(admin_a)

    change_url = url("journeys_journeyeventconfig_change", theirs.pk)
    response = console.get(change_url)
    posted = console.post(change_url, {"filters": json.dumps({}), "update_values": "[]"})
    add_page = console.get(url("journeys_journeyeventconfig_add")).content.decode()
    refused = console.post(
        url("journeys_journeyeventconfig_add"), _add_data(tenant_a, data_model=tenant_b.model.pk)
    )

    assert (response.status_code, posted.status_code) == (404, 404)
    theirs.refresh_from_db()
    assert theirs.filters == CHANGE_FILTER
    assert str(tenant_b.model.pk) not in _page_schema(add_page)["models"]
    assert "data_model" in refused.context["adminform"].form.errors
    assert not JourneyEventConfig.objects.filter(organization=tenant_a.organization).exists()
