"""Change-aware User Events in a real browser (console/user_event_form.js): for a Changed
trigger the row editors offer each field's value before the write ("Before this write":
previous.<field>) and the operators changed / did not change on a field itself; for a
Created one neither. On the add form, switching the trigger to Created keeps the rows that
use them, flagged, and the server refuses them on their rows until the trigger is Changed.
"""

from __future__ import annotations

import json
from typing import Any

from cdp import services
from journeys.models import JourneyEventConfig
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.browser.conftest import organization_admin, sign_in

CHANGED_ONLY = "applies to Changed User Events only"
TIER_UP = {
    "match": "all",
    "conditions": [
        {"field": "previous.customField01", "operator": "eq", "value": "silver"},
        {"field": "customField01", "operator": "eq", "value": "gold"},
    ],
}


def _model_with_events(admin: Any) -> tuple[Any, Any, Any]:
    """A custom model (customField01 "Tier", customFieldLong01 "Points") with a Changed
    and a Created User Event."""
    model = services.custom_model_create(organization=admin.organization, name="Loyalty Member")
    for name, label in (("customField01", "Tier"), ("customFieldLong01", "Points")):
        services.field_definition_create(
            organization=admin.organization, data_model=model, name=name, label=label
        )
    changed, created = (
        journey_event_config_create(
            organization=admin.organization,
            data_model=model,
            trigger=trigger,
            settings=UserEventSettings(
                event_name=f"member_{trigger.lower()}", category="UserIdentity"
            ),
        )
        for trigger in ("Changed", "Created")
    )
    return model, changed, created


def _field_values(row: Any) -> list[str]:
    return row.locator(".filter-field option").evaluate_all("nodes => nodes.map(n => n.value)")


def _operator_texts(row: Any) -> list[str]:
    return row.locator(".filter-operator option").all_inner_texts()


def _filters(page: Any) -> dict[str, Any]:
    return json.loads(page.locator("#id_filters").input_value() or "null") or {}


def _updates(page: Any) -> list[Any]:
    return json.loads(page.locator("#id_update_values").input_value() or "null") or []


def test_a_changed_user_event_offers_previous_fields_and_change_operators(console_server, new_page):
    admin = organization_admin("Acme Retail", "ops@acme.test")
    _model, changed, _created = _model_with_events(admin)
    page = new_page()
    sign_in(page, console_server, admin.username)
    page.goto(f"{console_server}/console/journeys/journeyeventconfig/{changed.pk}/change/")
    page.wait_for_selector("#filter-editor")

    page.click("#add-filter-row")
    row = page.locator("#filter-rows .filter-row").nth(0)
    # After the model's fields, a group of their values before the write, in words.
    group = row.locator(".filter-field optgroup")
    assert group.count() == 1 and group.get_attribute("label") == "Before this write"
    previous = group.locator("option[value='previous.customField01']")
    assert previous.inner_text() == "Tier (before this write)"
    assert "previous.customFieldLong01" in _field_values(row)
    values = _field_values(row)
    assert values.index("customFieldLong01") < values.index("previous.customField01")
    # On a field itself: changed / did not change, valueless.
    row.locator(".filter-field").select_option("customField01")
    assert {"changed", "did not change", "equals", "is empty"} <= set(_operator_texts(row))
    row.locator(".filter-operator").select_option("not_changed")
    assert row.locator(".filter-value").is_hidden()
    assert _filters(page)["conditions"] == [{"field": "customField01", "operator": "not_changed"}]
    # On a previous value: its field's operators, without the change operators.
    row.locator(".filter-field").select_option("previous.customField01")
    operators = _operator_texts(row)
    assert "equals" in operators and "starts with" in operators
    assert "changed" not in operators and "did not change" not in operators

    # previous.customField01 eq silver + customField01 eq gold.
    row.locator(".filter-operator").select_option("eq")
    assert row.locator(".filter-value").is_visible()
    row.locator(".filter-value").fill("silver")
    page.click("#add-filter-row")
    second = page.locator("#filter-rows .filter-row").nth(1)
    second.locator(".filter-field").select_option("customField01")
    second.locator(".filter-operator").select_option("eq")
    second.locator(".filter-value").fill("gold")
    # An update value from a previous value: the source-field select offers them too.
    page.click("#add-update-row")
    update = page.locator("#update-rows .update-row").nth(0)
    update.locator(".update-target").select_option("note")
    assert update.locator(".update-field optgroup").get_attribute("label") == "Before this write"
    update.locator(".update-field").select_option("previous.customField01")
    assert _filters(page) == TIER_UP
    assert _updates(page) == [{"target": "note", "field": "previous.customField01"}]
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")

    changed.refresh_from_db()
    assert changed.filters == TIER_UP
    assert changed.update_values == [{"target": "note", "field": "previous.customField01"}]
    # The saved rows come back with the previous field selected, in words.
    row = page.locator("#filter-rows .filter-row").nth(0)
    assert row.locator(".filter-field").input_value() == "previous.customField01"
    assert row.locator(".filter-field option:checked").inner_text() == "Tier (before this write)"


def test_a_created_user_event_offers_neither(console_server, new_page):
    admin = organization_admin("Acme Retail", "ops@acme.test")
    _model, _changed, created = _model_with_events(admin)
    page = new_page()
    sign_in(page, console_server, admin.username)
    page.goto(f"{console_server}/console/journeys/journeyeventconfig/{created.pk}/change/")
    page.wait_for_selector("#filter-editor")

    page.click("#add-filter-row")
    row = page.locator("#filter-rows .filter-row").nth(0)
    assert row.locator(".filter-field optgroup").count() == 0
    assert not [v for v in _field_values(row) if v.startswith("previous.")]
    row.locator(".filter-field").select_option("customField01")
    operators = _operator_texts(row)
    assert "equals" in operators and "is empty" in operators
    assert "changed" not in operators and "did not change" not in operators
    page.click("#add-update-row")
    update = page.locator("#update-rows .update-row").nth(0)
    update.locator(".update-target").select_option("note")
    assert update.locator(".update-field optgroup").count() == 0


def test_switching_the_add_forms_trigger_flags_the_rows_and_the_server_refuses_them(
    console_server, new_page
):
    admin = organization_admin("Acme Retail", "ops@acme.test")
    model, _changed, _created = _model_with_events(admin)
    page = new_page()
    sign_in(page, console_server, admin.username)
    page.goto(f"{console_server}/console/journeys/journeyeventconfig/add/?data_model={model.pk}")
    page.wait_for_selector("#filter-editor")
    page.fill("#id_event_name", "tier_upgraded")
    page.locator("#id_category").select_option("UserIdentity")

    # No trigger chosen yet: nothing change-aware.
    page.click("#add-filter-row")
    row = page.locator("#filter-rows .filter-row").nth(0)
    assert row.locator(".filter-field optgroup").count() == 0
    page.locator("#id_trigger").select_option("Changed")
    assert row.locator(".filter-field optgroup").get_attribute("label") == "Before this write"
    row.locator(".filter-field").select_option("previous.customField01")
    row.locator(".filter-operator").select_option("eq")
    row.locator(".filter-value").fill("silver")
    page.click("#add-filter-row")
    second = page.locator("#filter-rows .filter-row").nth(1)
    second.locator(".filter-field").select_option("customFieldLong01")
    second.locator(".filter-operator").select_option("changed")
    assert row.locator(".row-note").is_hidden() and second.locator(".row-note").is_hidden()
    wanted = {
        "match": "all",
        "conditions": [
            {"field": "previous.customField01", "operator": "eq", "value": "silver"},
            {"field": "customFieldLong01", "operator": "changed"},
        ],
    }
    assert _filters(page) == wanted

    # Created: the rows keep their values, flagged; the selects offer neither any more.
    page.locator("#id_trigger").select_option("Created")
    assert _filters(page) == wanted
    assert row.locator(".filter-field optgroup").count() == 0
    assert (
        row.locator(".filter-field option:checked").inner_text()
        == "previous.customField01 (Changed User Events only)"
    )
    assert (
        second.locator(".filter-operator option:checked").inner_text()
        == "changed (Changed User Events only)"
    )
    for flagged in (row, second):
        assert "changed-only" in flagged.get_attribute("class")
        assert flagged.locator(".row-note").is_visible()
    page.click("input[name=_save]")

    # The server refuses them, each message on its row.
    page.wait_for_selector("#filter-rows .filter-row.has-errors")
    assert not JourneyEventConfig.objects.filter(event_name="tier_upgraded").exists()
    row = page.locator("#filter-rows .filter-row").nth(0)
    second = page.locator("#filter-rows .filter-row").nth(1)
    # In words on the row; the service's message, by its path, in the title.
    assert row.locator(".row-errors").inner_text() == f"A value before this write {CHANGED_ONLY}"
    assert (
        row.locator(".row-errors li")
        .get_attribute("title")
        .startswith("filter.conditions[0].field: ")
    )
    assert second.locator(".row-errors").inner_text() == f"“changed” {CHANGED_ONLY}"
    assert (
        second.locator(".row-errors li")
        .get_attribute("title")
        .startswith("filter.conditions[1].operator: ")
    )
    assert "changed-only" in row.get_attribute("class")

    # Changed again: offered, unflagged, and saved.
    page.locator("#id_trigger").select_option("Changed")
    assert "changed-only" not in row.get_attribute("class")
    assert row.locator(".row-note").is_hidden()
    assert row.locator(".filter-field option:checked").inner_text() == "Tier (before this write)"
    assert second.locator(".filter-operator option:checked").inner_text() == "changed"
    assert second.locator(".filter-value").is_hidden()
    page.click("input[name=_save]")
    page.wait_for_selector("#je-config-id")

    stored = JourneyEventConfig.objects.get(event_name="tier_upgraded")
    assert stored.trigger == "Changed"
    assert stored.filters == wanted
