"""The Console journey of DESIGN §8 in a real browser (issue 5 item 8): an organization's
admin signs in, creates a custom model and two custom fields, adds a User Event with one
filter and one update value, reads its ID and Event Key off the page, ingests a matching
record through the real HTTP API with them, and finds the generated event in the Event
log and the request in the Ingestion log. A second organization's admin sees none of it.

With CDP_SCREENSHOTS=1 each step is saved as docs/console/NN-step.png (docs/console.md).
"""

from __future__ import annotations

import json
import re
from typing import Any

from cdp.models import DataModel
from journeys.models import JourneyEventConfig, UserEvent
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.browser.conftest import (
    Admin,
    api_ingest,
    api_token,
    organization_admin,
    sign_in,
)

MODEL_NAME = "Loyalty Member"
EVENT_NAME = "loyalty_member_joined"
SUB_CATEGORY = "loyalty-signup"
RECORD_KEY = "LM-000042"
CONFIG_ID_RE = re.compile(r"^[0-9a-f]{32}-Created-[A-Za-z0-9]{15}$")
EVENT_KEY_RE = re.compile(r"^CJE-[A-Z0-9]{10}\.[A-Z0-9]{10}$")


def _sidebar(page: Any, name: str) -> None:
    """Open a Console section from the navigation sidebar (the home page has none: its
    list of sections), as a person would."""
    menu = page.locator("#nav-sidebar")
    if menu.count() == 0:
        menu = page.locator("#content-main")
    menu.get_by_role("link", name=name, exact=True).click()
    page.wait_for_load_state()


def _select(page: Any, selector: str, value: str) -> None:
    page.locator(selector).select_option(value)


def test_console_journey_from_custom_model_to_event_log(console_server, new_page, screenshot):
    base = console_server
    acme = organization_admin("Acme Retail", "ops@acme.test")
    page = new_page()

    # 1. Sign in.
    page.goto(f"{base}/console/")
    page.fill("#id_username", acme.username)
    page.fill("#id_password", "s3cret-pass-word")
    screenshot(page, "01-sign-in")
    page.click("#login-form input[type=submit]")
    page.wait_for_selector("#user-tools")
    assert "Console" in page.title()
    screenshot(page, "02-console-home")

    # 2. Console › Custom Model: the organization's system models, and "+ Add".
    _sidebar(page, "Custom Model")
    assert page.locator("#result_list").is_visible()
    screenshot(page, "03-custom-models")
    page.locator(".object-tools a.addlink").click()
    page.wait_for_selector("#id_name")
    page.fill("#id_name", MODEL_NAME)
    page.locator("input[name=tags][value=SUPPORT_IGNORED_UPDATE_CFS]").check()
    screenshot(page, "04-add-model")
    page.click("input[name=_save]")
    page.wait_for_selector("#model-tabs")
    model = DataModel.objects.get(organization=acme.organization, name=MODEL_NAME)
    assert model.mom_code in page.locator("#tab-fields").inner_text()  # generated, shown

    # 3. Its Fields tab: two custom fields, the second row through "Add another".
    page.locator("#tab-link-fields").click()
    rows = page.locator("#tab-fields tr.form-row:not(.empty-form)")
    rows.nth(0).locator("input[name$='-name']").fill("customField01")
    rows.nth(0).locator("input[name$='-label']").fill("Tier")
    page.locator("#tab-fields .add-row a").click()
    rows.nth(1).locator("input[name$='-name']").fill("customFieldLong01")
    rows.nth(1).locator("input[name$='-label']").fill("Points")
    page.click("input[name=_continue]")
    page.wait_for_selector("#model-tabs")
    assert page.locator(".messagelist .success").count() == 1
    fields_text = page.locator("#tab-fields").inner_text()
    assert "customField01" in fields_text and "customFieldLong01" in fields_text
    screenshot(page, "05-fields")

    # 4. Data Manipulation › User Event › + Add: the form of DESIGN §7, the model preset.
    page.locator("#tab-link-user-events").click()
    assert page.locator("#user-events-empty").is_visible()
    page.locator("#add-user-event").click()
    page.wait_for_selector("#filter-editor")
    assert page.locator("#id_data_model").input_value() == str(model.pk)
    _select(page, "#id_trigger", "Created")
    page.fill("#id_event_name", EVENT_NAME)
    _select(page, "#id_event_time", "createdAt")
    _select(page, "#id_channel", "Online")
    _select(page, "#id_category", "UserIdentity")
    page.fill("#id_sub_category", SUB_CATEGORY)
    # One filter row: customFieldLong01 gte 100.
    page.click("#add-filter-row")
    condition = page.locator("#filter-rows .filter-row").nth(0)
    condition.locator(".filter-field").select_option("customFieldLong01")
    condition.locator(".filter-operator").select_option("gte")
    condition.locator(".filter-value").fill("100")
    # One update-value row: the event's value from customFieldLong01.
    page.click("#add-update-row")
    update = page.locator("#update-rows .update-row").nth(0)
    update.locator(".update-target").select_option("value")
    update.locator(".update-source").select_option("field")
    update.locator(".update-field").select_option("customFieldLong01")
    assert page.locator("#id_enabled").is_checked()
    assert json.loads(page.locator("#id_filters").input_value()) == {
        "match": "all",
        "conditions": [{"field": "customFieldLong01", "operator": "gte", "value": 100}],
    }
    assert json.loads(page.locator("#id_update_values").input_value()) == [
        {"target": "value", "field": "customFieldLong01"}
    ]
    screenshot(page, "06-user-event-form")
    page.click("input[name=_save]")

    # 5. Saved: the page shows the generated ID (jeConfigId) and Event Key (jeEventKey).
    page.wait_for_selector("#je-config-id")
    config_id = page.locator("#je-config-id").inner_text().strip()
    event_key = page.locator("#je-event-key").inner_text().strip()
    assert CONFIG_ID_RE.match(config_id), config_id
    assert EVENT_KEY_RE.match(event_key), event_key
    assert config_id.startswith(acme.organization.group_key + "-Created-")
    assert config_id in page.locator("#je-payload-sample").inner_text()
    stored = JourneyEventConfig.objects.get(config_id=config_id)
    assert (stored.event_key, stored.event_name, stored.data_model_id) == (
        event_key,
        EVENT_NAME,
        model.pk,
    )
    assert (stored.channel, stored.category, stored.sub_category) == (
        "Online",
        "UserIdentity",
        SUB_CATEGORY,
    )
    assert stored.event_time == "createdAt"
    screenshot(page, "07-user-event-saved")

    # 6. A client authenticates and ingests a matching record over real HTTP.
    token = api_token(base, acme)
    status, body = api_ingest(
        base,
        acme,
        token,
        {
            "objectType": "custom-model",
            "source": "CRM",
            "jeConfigId": config_id,
            "jeEventKey": event_key,
            "entries": [
                {
                    "momCode": model.mom_code,
                    "refId": RECORD_KEY,
                    "customerId": "C-42",
                    "createdAt": 1_700_000_000_000,
                    "customFieldTexts": {"customField01": "gold"},
                    "customFieldLongs": {"customFieldLong01": 150},
                }
            ],
        },
    )
    assert status == 200, body
    assert (body["success"], body["created"], body["failed"]) == (True, 1, 0)
    assert body["events"]["generated"] == 1, body
    request_id = body["requestId"]
    event = UserEvent.objects.get(organization=acme.organization)
    assert (event.source_id, event.event_name, event.value) == (RECORD_KEY, EVENT_NAME, 150)

    # The model's Data Ingestion API tab: the sample payload and the test form.
    page.goto(f"{base}/console/cdp/datamodel/{model.pk}/change/#tab-ingestion")
    page.wait_for_selector("#sample-payload")
    assert page.locator("#tab-ingestion").is_visible()
    assert model.mom_code in page.locator("#sample-payload").inner_text()
    screenshot(page, "08-data-ingestion-api")

    # 7. The Event log shows the generated event.
    _sidebar(page, "Event log")
    listing = page.locator("#result_list").inner_text()
    assert EVENT_NAME in listing and RECORD_KEY in listing
    # The User Event column shows the jeConfigId short (its end), the whole in its title.
    assert f"…{config_id[-8:]}" in listing
    assert page.locator(f'#result_list [title="{EVENT_NAME} ({config_id})"]').count() == 1
    screenshot(page, "09-event-log", wide=True)

    # 8. The Ingestion log lists the request; its page lists the per-entry result.
    _sidebar(page, "Ingestion log")
    # The requestId column shows it short, the whole in its title, and links the row.
    assert f"{request_id[:8]}…" in page.locator("#result_list").inner_text()
    screenshot(page, "10-ingestion-log", wide=True)
    page.locator(f'#result_list a:has([title="{request_id}"])').click()
    page.wait_for_selector("#ingestion-results-table")
    entry = page.locator("#ingestion-results-table tr.entry-result")
    assert entry.count() == 1
    cells = entry.nth(0).locator("td").all_inner_texts()
    assert cells[1:4] == [RECORD_KEY, "200", "created"], cells
    assert event.event_id in cells[5]
    screenshot(page, "11-ingestion-request")

    # 9. Organization: members and roles, API keys, group key.
    # A member of one organization goes straight to its page.
    _sidebar(page, "Organization")
    page.wait_for_selector("#group-key")
    assert page.locator("#group-key").inner_text() == acme.organization.group_key
    assert acme.username in page.content()
    screenshot(page, "12-organization")


def _acme_with_data(base: str) -> dict[str, Any]:
    """Organization A with a custom model, a User Event, an ingested record, its event and
    its log row (set up through the services and the HTTP API, as the journey left it)."""
    from cdp import services

    acme = organization_admin("Acme Retail", "ops@acme.test")
    model = services.custom_model_create(organization=acme.organization, name=MODEL_NAME)
    services.field_definition_create(
        organization=acme.organization, data_model=model, name="customFieldLong01", label="Points"
    )
    config = journey_event_config_create(
        organization=acme.organization,
        data_model=model,
        trigger="Created",
        settings=UserEventSettings(event_name=EVENT_NAME, category="UserIdentity"),
    )
    status, body = api_ingest(
        base,
        acme,
        api_token(base, acme),
        {
            "objectType": "custom-model",
            "source": "CRM",
            "jeConfigId": config.config_id,
            "entries": [
                {
                    "momCode": model.mom_code,
                    "refId": RECORD_KEY,
                    "customFieldLongs": {"customFieldLong01": 150},
                }
            ],
        },
    )
    assert status == 200 and body["events"]["generated"] == 1, body
    return {"admin": acme, "model": model, "config": config, "request_id": body["requestId"]}


def _rows(page: Any) -> int:
    return page.locator("#result_list tbody tr").count()


def test_a_second_organizations_admin_sees_none_of_it(console_server, new_page):
    base = console_server
    acme = _acme_with_data(base)
    globex: Admin = organization_admin("Globex", "ops@globex.test")
    page = new_page()
    sign_in(page, base, globex.username)

    _sidebar(page, "Custom Model")
    models = page.locator("#result_list").inner_text()
    assert MODEL_NAME not in models and acme["model"].mom_code not in models
    assert _rows(page) == DataModel.objects.filter(organization=globex.organization).count()
    assert "Acme" not in page.content()

    _sidebar(page, "User Event")
    assert _rows(page) == 0
    assert acme["config"].config_id not in page.content()

    _sidebar(page, "Event log")
    assert _rows(page) == 0
    assert RECORD_KEY not in page.content() and EVENT_NAME not in page.content()

    _sidebar(page, "Ingestion log")
    assert _rows(page) == 0
    assert acme["request_id"] not in page.content()

    # A's objects by their URLs: missing, like objects that do not exist.
    for path in (
        f"/console/cdp/datamodel/{acme['model'].pk}/change/",
        f"/console/journeys/journeyeventconfig/{acme['config'].pk}/change/",
        f"/console/cdp/organization/{acme['admin'].organization.pk}/change/",
    ):
        response = page.goto(base + path)
        assert response.status == 404, path
        assert MODEL_NAME not in page.content()
