"""The Console's scripts in a real browser: a copy button puts the User Event's ID on the
clipboard (console/console.js), and the Filter and Update Value row editors write their
rows into the hidden JSON inputs the form posts (console/user_event_form.js), with the
operators and the server's errors in words."""

from __future__ import annotations

import json

from cdp import services
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.browser.conftest import organization_admin, sign_in


def _model_with_event(admin):
    model = services.custom_model_create(organization=admin.organization, name="Orders Plus")
    services.field_definition_create(
        organization=admin.organization,
        data_model=model,
        name="customFieldLong01",
        label="Points",
    )
    config = journey_event_config_create(
        organization=admin.organization,
        data_model=model,
        trigger="Created",
        settings=UserEventSettings(event_name="order_plus_created", category="Transaction"),
    )
    return model, config


def test_a_copy_button_copies_the_user_event_id(console_server, new_page):
    admin = organization_admin("Acme Retail", "ops@acme.test")
    _model, config = _model_with_event(admin)
    page = new_page(permissions=["clipboard-read", "clipboard-write"])
    sign_in(page, console_server, admin.username)
    page.goto(f"{console_server}/console/journeys/journeyeventconfig/{config.pk}/change/")

    button = page.locator("button.copy-button[data-copy-target='je-config-id']")
    button.click()

    page.wait_for_selector("button.copy-button[data-copy-target='je-config-id'][data-copied]")
    assert button.get_attribute("data-copied") == "true"
    assert button.inner_text() == "Copied"
    assert page.evaluate("navigator.clipboard.readText()") == config.config_id
    page.locator("button.copy-button[data-copy-target='je-event-key']").click()
    page.wait_for_function(
        "expected => navigator.clipboard.readText().then(text => text === expected)",
        arg=config.event_key,
    )


def test_adding_and_removing_rows_rewrites_the_hidden_json(console_server, new_page):
    admin = organization_admin("Acme Retail", "ops@acme.test")
    model, _config = _model_with_event(admin)
    page = new_page()
    sign_in(page, console_server, admin.username)
    page.goto(f"{console_server}/console/journeys/journeyeventconfig/add/?data_model={model.pk}")

    def filters():
        return json.loads(page.locator("#id_filters").input_value() or "null") or {}

    def updates():
        return json.loads(page.locator("#id_update_values").input_value() or "null") or []

    assert filters().get("conditions", []) == []
    assert page.locator("#filter-empty").is_visible()

    page.click("#add-filter-row")
    row = page.locator("#filter-rows .filter-row").nth(0)
    row.locator(".filter-field").select_option("customFieldLong01")
    # The operators offered are those of the field's type (integer: no `contains`), in words.
    operators = row.locator(".filter-operator option").all_inner_texts()
    assert "≥" in operators and "contains" not in operators
    row.locator(".filter-operator").select_option("gte")
    row.locator(".filter-value").fill("100")
    assert filters() == {
        "match": "all",
        "conditions": [{"field": "customFieldLong01", "operator": "gte", "value": 100}],
    }
    assert page.locator("#filter-empty").is_hidden()

    page.click("#add-filter-row")
    second = page.locator("#filter-rows .filter-row").nth(1)
    second.locator(".filter-field").select_option("customFieldLong01")
    second.locator(".filter-operator").select_option("is_empty")
    assert second.locator(".filter-value").is_hidden()  # a valueless operator
    page.locator("#filter-match").select_option("any")
    assert filters()["match"] == "any"
    assert [c["operator"] for c in filters()["conditions"]] == ["gte", "is_empty"]

    row.locator(".remove-row").click()
    assert filters()["conditions"] == [{"field": "customFieldLong01", "operator": "is_empty"}]
    page.locator("#filter-rows .filter-row .remove-row").click()
    assert filters()["conditions"] == []
    assert page.locator("#filter-empty").is_visible()

    page.click("#add-update-row")
    update = page.locator("#update-rows .update-row").nth(0)
    update.locator(".update-target").select_option("value")
    update.locator(".update-field").select_option("customFieldLong01")
    assert updates() == [{"target": "value", "field": "customFieldLong01"}]
    update.locator(".update-source").select_option("value")
    update.locator(".update-value").fill("7")
    assert updates() == [{"target": "value", "value": 7}]
    update.locator(".remove-row").click()
    assert updates() == []


LAPTOP = {"width": 1366, "height": 768}


def test_operators_read_as_words_follow_the_field_and_errors_read_as_words(
    console_server, new_page
):
    admin = organization_admin("Acme Retail", "ops@acme.test")
    model, _config = _model_with_event(admin)
    for name in ("customFieldBool01", "customFieldList01"):
        services.field_definition_create(
            organization=admin.organization, data_model=model, name=name
        )
    page = new_page()
    page.set_viewport_size(LAPTOP)
    sign_in(page, console_server, admin.username)
    page.goto(f"{console_server}/console/journeys/journeyeventconfig/add/?data_model={model.pk}")
    page.fill("#id_event_name", "order_plus_big")
    page.locator("#id_trigger").select_option("Created")
    page.locator("#id_category").select_option("Transaction")

    def filters():
        return json.loads(page.locator("#id_filters").input_value() or "null") or {}

    page.click("#add-filter-row")
    row = page.locator("#filter-rows .filter-row").nth(0)
    operator = row.locator(".filter-operator")
    row.locator(".filter-field").select_option("customFieldLong01")
    shown = operator.locator("option").all_inner_texts()
    assert shown[1:5] == ["equals", "is not", ">", "≥"]
    assert "is not one of" in shown and "gte" not in shown and "not_in" not in shown
    operator.select_option("gte")
    assert operator.locator("option:checked").inner_text() == "≥"
    row.locator(".filter-value").fill("100")
    assert filters()["conditions"] == [
        {"field": "customFieldLong01", "operator": "gte", "value": 100}
    ]

    # A boolean field has no ≥: its operators replace the integer's, ≥ gives way to the
    # first of them, and 100 is no boolean.
    row.locator(".filter-field").select_option("customFieldBool01")
    shown = operator.locator("option").all_inner_texts()
    assert "≥" not in shown and "equals" in shown and "contains" not in shown
    assert operator.input_value() == "eq"
    assert row.locator(".filter-value").input_value() == ""
    assert filters()["conditions"] == [
        {"field": "customFieldBool01", "operator": "eq", "value": None}
    ]

    # A list value for is one of, then a field whose operator stays but takes one value.
    row.locator(".filter-field").select_option("customFieldLong01")
    operator.select_option("in")
    row.locator(".filter-value").fill("1, 2")
    row.locator(".filter-field").select_option("customFieldList01")
    assert operator.input_value() == "in"
    assert row.locator(".filter-value").input_value() == "1, 2"
    row.locator(".filter-field").select_option("customFieldLong01")
    operator.select_option("gte")
    assert row.locator(".filter-value").input_value() == "1, 2"  # typed, not yet changed
    row.locator(".filter-value").fill("")

    # No value for ≥: the server refuses it, in words, on the row.
    page.click("input[name=_save]")
    page.wait_for_selector("#filter-rows .filter-row.has-errors")
    row = page.locator("#filter-rows .filter-row").nth(0)
    message = row.locator(".row-errors li")
    assert message.all_inner_texts() == ["Value is needed for ≥"]
    assert message.get_attribute("title") == (
        "filter.conditions[0].value: required for operator 'gte'"
    )
    assert row.locator(".filter-operator option:checked").inner_text() == "≥"
    assert row.is_visible()
