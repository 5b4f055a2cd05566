"""The Console's Records in a real browser, on a laptop's 1366×768 screen: an admin opens
a model's records from the model's page, finds one by email, opens it and reads its
fields by label, its history and the event it produced. The list fits the screen's width.
Another organization's record with the same email stays out of sight.

With CDP_SCREENSHOTS=1 the list and the record are saved as docs/console/30-records.png
and 31-record.png (docs/console.md, "13. Records").
"""

from __future__ import annotations

from typing import Any

from cdp import services
from cdp.schema import TAG_KEEP_HISTORY, TAG_SUPPORT_IGNORED_UPDATE_CFS
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.browser.conftest import Admin, api_ingest, api_token, organization_admin, sign_in

LAPTOP = {"width": 1366, "height": 768}
EMAIL = "lan.nguyen@acme.test"
EVENT_NAME = "loyalty_member_joined"


def _loyalty_model(admin: Admin) -> Any:
    model = services.custom_model_create(
        organization=admin.organization,
        name="Loyalty Member",
        tags=[TAG_SUPPORT_IGNORED_UPDATE_CFS, TAG_KEEP_HISTORY],
    )
    for name, label in (("customField01", "Tier"), ("customFieldLong01", "Points")):
        services.field_definition_create(
            organization=admin.organization, data_model=model, name=name, label=label
        )
    return model


def _member(model: Any, n: int, **fields: Any) -> dict[str, Any]:
    return {
        "momCode": model.mom_code,
        "refId": f"LM-{n:06}",
        "customerId": f"C-{n}",
        "email": f"member{n}@acme.test",
        "phone": f"09{n:08}",
        **fields,
    }


def _ingest(base: str, admin: Admin, token: str, entries: list[dict[str, Any]], **body: Any):
    status, answer = api_ingest(
        base,
        admin,
        token,
        {"objectType": "custom-model", "source": "CRM", "entries": entries, **body},
    )
    assert status == 200 and answer["failed"] == 0, answer
    return answer


def test_a_models_records_searched_by_email_and_one_opened(console_server, new_page, screenshot):
    base = console_server
    acme = organization_admin("Acme Retail", "ops@acme.test")
    globex = organization_admin("Globex", "ops@globex.test")
    model = _loyalty_model(acme)
    config = journey_event_config_create(
        organization=acme.organization,
        data_model=model,
        trigger="Created",
        settings=UserEventSettings(event_name=EVENT_NAME, category="UserIdentity"),
    )
    token = api_token(base, acme)
    members = [
        _member(model, n, customFieldTexts={"customField01": "silver"}) for n in range(1, 13)
    ]
    members[6]["email"] = EMAIL
    _ingest(base, acme, token, members, jeConfigId=config.config_id)
    # Lan reaches gold: a second write, a second history entry.
    gold = {**members[6], "customFieldTexts": {"customField01": "gold"}}
    gold["customFieldLongs"] = {"customFieldLong01": 1200}
    update = _ingest(base, acme, token, [gold])
    globex_model = _loyalty_model(globex)
    _ingest(
        base,
        globex,
        api_token(base, globex),
        [_member(globex_model, 7, email=EMAIL)],
    )

    page = new_page()
    page.set_viewport_size(LAPTOP)
    sign_in(page, base, acme.username)

    # The model's page: its Records tab leads to its records, in key order.
    page.goto(f"{base}/console/cdp/datamodel/{model.pk}/change/#tab-records")
    page.wait_for_selector("#tab-records")
    page.locator("#model-records-link").click()
    page.wait_for_selector("#result_list")
    keys = page.locator("#result_list th.field-key").all_inner_texts()
    assert keys == [m["refId"] for m in members]
    assert page.locator("h1").inner_text() == f"Records of {model}"
    # The list fits a laptop's screen: no sideways scrolling, of the page or of the table.
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    ), page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    results = "document.querySelector('#changelist .results')"
    assert page.evaluate(f"{results}.scrollWidth <= {results}.clientWidth"), page.evaluate(
        f"[{results}.scrollWidth, {results}.clientWidth]"
    )
    screenshot(page, "30-records")

    # Search by email, in another case: exactly Lan's record, not Globex's.
    page.fill("#searchbar", EMAIL.upper())
    page.locator("#changelist-search input[type=submit]").click()
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert EMAIL in rows.nth(0).inner_text() and "LM-000007" in rows.nth(0).inner_text()
    assert "Globex" not in page.content()

    # The record: its fields by label, its history (newest first) and its event.
    rows.nth(0).locator("th.field-key a").click()
    page.wait_for_selector("#record-fields")
    tier = page.locator("#record-fields tr[data-field='customField01']").inner_text()
    assert "Tier" in tier and "gold" in tier
    assert (
        "Points" in page.locator("#record-fields tr[data-field='customFieldLong01']").inner_text()
    )
    history = page.locator("#record-history-table tr.record-history-entry")
    assert history.count() == 2
    assert history.nth(0).get_attribute("data-request-id") == update["requestId"]
    assert "silver" in history.nth(0).inner_text() and "gold" in history.nth(0).inner_text()
    events = page.locator("#record-events-table tr.record-event")
    assert events.count() == 1 and EVENT_NAME in events.nth(0).inner_text()
    assert page.locator("#record-requests-table a.record-request-link").count() == 2
    screenshot(page, "31-record")

    # The event links to its page in the Event log.
    events.nth(0).locator("a.record-event-link").click()
    page.wait_for_load_state()
    assert "/console/journeys/userevent/" in page.url
    assert "LM-000007" in page.locator("#content-main").inner_text()
