"""User Event "+ Add" (DESIGN §7): the form posts the rows' JSON, journeys.services
validates and stores it, the page then shows jeConfigId and jeEventKey with a payload
sample that uses them; invalid rows come back with errors by path."""

from __future__ import annotations

import html
import json
import re

from cdp.models import DataModel
from journeys.filters import OPERATORS
from journeys.models import JourneyEventConfig
from tests.console.conftest import form_data, url, user_event_create

FILTER = {
    "match": "all",
    "conditions": [{"field": "customFieldLong01", "operator": "gte", "value": 100}],
}
UPDATES = [{"target": "properties.tier", "field": "customField01"}]


def _add_data(tenant, **overrides):
    data = {
        "data_model": tenant.model.pk,
        "trigger": "Created",
        "event_name": "membership_created",
        "event_time": "ingested",
        "channel": "Online",
        "category": "UserIdentity",
        "sub_category": "signup",
        "filters": json.dumps(FILTER),
        "update_values": json.dumps(UPDATES),
        "enabled": "on",
    }
    data.update(overrides)
    return data


def test_the_add_form_has_every_field_with_the_model_preset(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = console.get(
        url("journeys_journeyeventconfig_add") + f"?data_model={tenant_a.model.pk}"
    )

    form = response.context["adminform"].form
    assert form.initial["data_model"] == str(tenant_a.model.pk)
    page = response.content.decode()
    for element_id in (
        "id_data_model",
        "id_trigger",
        "id_event_name",
        "id_event_time",
        "id_channel",
        "id_category",
        "id_sub_category",
        "id_filters",
        "id_update_values",
        "id_enabled",
        "filter-rows",
        "add-filter-row",
        "update-rows",
        "add-update-row",
        "filter-match",
        "user-event-schema",
    ):
        assert f'id="{element_id}"' in page, element_id
    for label in (
        "Trigger when",
        "Event Name",
        "Event Time",
        "Channel",
        "Category",
        "Sub Category",
        "Filter",
        "Update Value",
        "Enable",
    ):
        assert label in page, label
    # Event Time: the write time, or a timestamp field of the preset model.
    choices = [value for value, _label in form.fields["event_time"].widget.choices]
    assert choices == ["ingested", "createdAt", "updatedAt", "customFieldTimestamp01"]
    assert set(form.fields["channel"].choices) >= {("None", "None"), ("Online", "Online")}
    # The breadcrumbs go through the model.
    assert "Custom Model" in page and "Membership" in page
    assert "/static/console/user_event_form.js" in page


def test_the_schema_for_the_row_editor_lists_fields_operators_and_targets(
    console, admin_a, tenant_a, tenant_b
):
    console.force_login(admin_a)

    response = console.get(url("journeys_journeyeventconfig_add"))

    schema = response.context["user_event_schema"]
    assert set(schema["models"]) == {
        str(pk)
        for pk in DataModel.objects.filter(organization=tenant_a.organization).values_list(
            "pk", flat=True
        )
    }
    fields = {f["name"]: f["type"] for f in schema["models"][str(tenant_a.model.pk)]["fields"]}
    assert fields["customFieldLong01"] == "integer" and fields["refId"] == "text"
    assert "gte" in schema["operatorsByType"]["integer"]
    assert "contains" not in schema["operatorsByType"]["integer"]
    assert {"value", "email", "eventLabels"} <= set(schema["targets"])
    assert (
        str(tenant_b.model.pk)
        not in response.content.decode().split('id="user-event-schema"')[1].split("</script>")[0]
    )


def test_creating_a_user_event_stores_the_rows_and_shows_the_ids(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = console.post(url("journeys_journeyeventconfig_add"), _add_data(tenant_a))

    config = JourneyEventConfig.objects.get(organization=tenant_a.organization)
    assert response.status_code == 302
    assert response["Location"] == url("journeys_journeyeventconfig_change", config.pk)
    assert config.data_model == tenant_a.model
    assert config.trigger == "Created"
    assert config.filters == FILTER
    assert config.update_values == UPDATES
    assert (config.event_name, config.channel, config.category, config.sub_category) == (
        "membership_created",
        "Online",
        "UserIdentity",
        "signup",
    )
    assert config.enabled and config.created_by == admin_a
    assert re.fullmatch(rf"{tenant_a.group_key}-Created-[A-Za-z0-9]{{15}}", config.config_id)

    page = console.get(response["Location"]).content.decode()
    assert f'<code id="je-config-id" class="copy-source">{config.config_id}</code>' in page
    assert f'<code id="je-event-key" class="copy-source">{config.event_key}</code>' in page
    assert 'data-copy-target="je-config-id"' in page
    assert 'data-copy-target="je-event-key"' in page
    sample = json.loads(
        page.split('id="je-payload-sample" class="copy-source">')[1]
        .split("</pre>")[0]
        .replace("&quot;", '"')
    )
    assert sample["jeConfigId"] == config.config_id
    assert sample["jeEventKey"] == config.event_key
    assert sample["entries"][0]["momCode"] == tenant_a.mom_code


def test_trigger_and_model_are_read_only_after_creation(console, admin_a, tenant_a):
    config = user_event_create(tenant_a, trigger="Created")
    other_model = DataModel.objects.get(organization=tenant_a.organization, object_type="order")
    console.force_login(admin_a)
    change_url = url("journeys_journeyeventconfig_change", config.pk)
    page = console.get(change_url)
    assert "trigger" not in page.context["adminform"].form.fields
    assert "data_model" not in page.context["adminform"].form.fields

    data = form_data(page)
    data.update(
        {
            "trigger": "Changed",
            "data_model": other_model.pk,
            "event_name": "renamed",
            "filters": json.dumps(FILTER),
        }
    )
    response = console.post(change_url, data)

    assert response.status_code == 302
    config.refresh_from_db()
    assert (config.trigger, config.data_model_id) == ("Created", tenant_a.model.pk)
    assert config.event_name == "renamed"
    assert config.filters == FILTER


def test_invalid_rows_come_back_with_errors_by_path(console, admin_a, tenant_a):
    console.force_login(admin_a)
    bad_filter = {
        "match": "all",
        "conditions": [
            {"field": "customFieldLong01", "operator": "gte", "value": 100},
            {"field": "customFieldLong01", "operator": "contains", "value": "x"},
            {"field": "nope", "operator": "eq", "value": 1},
        ],
    }
    bad_updates = [
        {"target": "value", "field": "customFieldList01"},
        {"target": "bogus", "value": 1},
    ]

    response = console.post(
        url("journeys_journeyeventconfig_add"),
        _add_data(
            tenant_a,
            filters=json.dumps(bad_filter),
            update_values=json.dumps(bad_updates),
            event_name="",
        ),
    )

    assert response.status_code == 200
    assert not JourneyEventConfig.objects.exists()
    form = response.context["adminform"].form
    assert "event_name" in form.errors
    filter_errors = " ".join(form.errors["filters"])
    assert "filter.conditions[1].operator" in filter_errors
    assert "filter.conditions[2].field: unknown field 'nope'" in filter_errors
    assert "filter.conditions[0]" not in filter_errors
    update_errors = " ".join(form.errors["update_values"])
    assert "updateValues[0].field" in update_errors and "updateValues[1].target" in update_errors
    # The row editors get them by path, to show each on its row.
    by_path = json.loads(form.fields["filters"].widget.attrs["data-errors"])
    assert set(by_path) == {"filter.conditions[1].operator", "filter.conditions[2].field"}
    assert by_path["filter.conditions[2].field"] == ["unknown field 'nope'"]
    page = response.content.decode()
    assert 'data-errors="{&quot;filter.conditions[1].operator&quot;' in page
    # What was posted is kept, so the rows come back as they were typed.
    assert json.loads(form["filters"].value()) == bad_filter


def _error_words(page: str, editor: str) -> dict[str, list[str]]:
    """The messages by path a row editor (`filter` or `update`) shows on its rows."""
    match = re.search(
        rf'<div class="rows-editor" id="{editor}-editor"[^>]*data-error-words="([^"]*)"', page
    )
    assert match, f"no data-error-words on #{editor}-editor"
    return json.loads(html.unescape(match.group(1)))


def test_the_operators_read_as_words_and_are_stored_as_codes(console, admin_a, tenant_a):
    console.force_login(admin_a)

    page = console.get(url("journeys_journeyeventconfig_add")).content.decode()

    schema = json.loads(
        html.unescape(re.search(r'id="user-event-schema"[^>]*>(.*?)</script>', page, re.S).group(1))
    )
    labels = schema["operatorLabels"]
    assert set(labels) == set(OPERATORS)
    assert (labels["eq"], labels["neq"], labels["gte"], labels["lte"]) == (
        "equals",
        "is not",
        "≥",
        "≤",
    )
    assert (labels["not_in"], labels["not_contains"], labels["not_changed"]) == (
        "is not one of",
        "does not contain",
        "did not change",
    )
    # The select's values stay the codes the wire takes.
    assert "gte" in schema["operatorsByType"]["integer"]
    assert "≥" not in schema["operatorsByType"]["integer"]


def test_row_errors_come_in_words_and_keep_the_services_message(console, admin_a, tenant_a):
    console.force_login(admin_a)
    bad_filter = {
        "match": "all",
        "conditions": [
            {"field": "customFieldLong01", "operator": "gte"},
            {"field": "customFieldLong01", "operator": "contains", "value": "x"},
            {"field": "nope", "operator": "eq", "value": 1},
            {"field": "customFieldLong01", "operator": "in", "value": []},
            {"field": "customFieldLong01", "operator": "bogus", "value": 1, "extra": 1},
        ],
    }
    bad_updates = [
        {"target": "value", "field": "customFieldList01"},
        {"target": "properties.tier", "field": "customField01"},
        {"target": "properties.tier", "field": "customField01"},
    ]

    response = console.post(
        url("journeys_journeyeventconfig_add"),
        _add_data(tenant_a, filters=json.dumps(bad_filter), update_values=json.dumps(bad_updates)),
    )

    assert response.status_code == 200
    assert not JourneyEventConfig.objects.exists()
    page = response.content.decode()
    assert _error_words(page, "filter") == {
        "filter.conditions[0].value": ["Value is needed for ≥"],
        "filter.conditions[1].operator": [
            "“contains” does not apply to customFieldLong01, an integer field (use equals, "
            "is not, >, ≥, <, ≤, is one of, is not one of, is empty, is not empty, changed, "
            "did not change)"
        ],
        "filter.conditions[2].field": ["nope is not a field of this model"],
        "filter.conditions[3].value": ["Values, separated by commas, are needed for is one of"],
        "filter.conditions[4].operator": ["'bogus' is not an operator"],
        # Not worded here: as the service says it.
        "filter.conditions[4]": ["unknown key 'extra' (use field, operator, value)"],
    }
    assert _error_words(page, "update") == {
        "updateValues[0].field": ["value takes a number; customFieldList01 is a list field"],
        "updateValues[2].target": ["properties.tier is already set by update value 2"],
    }
    # The services' own messages are unchanged, by the same paths.
    form = response.context["adminform"].form
    by_path = json.loads(form.fields["filters"].widget.attrs["data-errors"])
    assert by_path["filter.conditions[0].value"] == ["required for operator 'gte'"]
    assert "filter.conditions[0].value: required for operator 'gte'" in form.errors["filters"]


def test_json_that_does_not_parse_is_refused(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = console.post(
        url("journeys_journeyeventconfig_add"), _add_data(tenant_a, filters="{not json")
    )

    assert response.status_code == 200
    assert "filters" in response.context["adminform"].form.errors
    assert not JourneyEventConfig.objects.exists()


def test_an_event_time_field_of_the_model_is_accepted_and_another_refused(
    console, admin_a, tenant_a
):
    console.force_login(admin_a)

    refused = console.post(
        url("journeys_journeyeventconfig_add"), _add_data(tenant_a, event_time="customField01")
    )
    accepted = console.post(
        url("journeys_journeyeventconfig_add"),
        _add_data(tenant_a, event_time="customFieldTimestamp01"),
    )

    assert "event_time" in refused.context["adminform"].form.errors
    assert accepted.status_code == 302
    assert JourneyEventConfig.objects.get().event_time == "customFieldTimestamp01"


def test_empty_rows_mean_no_filter_and_no_update_values(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = console.post(
        url("journeys_journeyeventconfig_add"),
        _add_data(tenant_a, filters="", update_values="", trigger="Changed"),
    )

    assert response.status_code == 302
    config = JourneyEventConfig.objects.get()
    assert (config.filters, config.update_values, config.trigger) == ({}, [], "Changed")


def test_a_model_of_another_organization_cannot_be_chosen(console, admin_a, tenant_a, tenant_b):
    console.force_login(admin_a)

    response = console.post(
        url("journeys_journeyeventconfig_add"), _add_data(tenant_a, data_model=tenant_b.model.pk)
    )

    assert response.status_code == 200
    assert "data_model" in response.context["adminform"].form.errors
    assert not JourneyEventConfig.objects.exists()


def test_the_models_page_lists_its_user_events(console, admin_a, tenant_a, tenant_b):
    mine = user_event_create(tenant_a)
    theirs = user_event_create(tenant_b)
    console.force_login(admin_a)

    page = console.get(url("cdp_datamodel_change", tenant_a.model.pk)).content.decode()

    assert mine.config_id in page and mine.event_key in page
    assert theirs.config_id not in page
    assert url("journeys_journeyeventconfig_change", mine.pk) in page


def test_enable_and_disable_actions_go_through_the_service(console, editor_a, tenant_a):
    config = user_event_create(tenant_a)
    console.force_login(editor_a)

    console.post(
        url("journeys_journeyeventconfig_changelist"),
        {"action": "disable_selected", "_selected_action": [config.pk]},
    )

    config.refresh_from_db()
    assert not config.enabled
    listing = console.get(url("journeys_journeyeventconfig_changelist")).content.decode()
    assert "UserIdentity" in listing and config.config_id in listing
