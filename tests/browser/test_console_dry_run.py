"""The Data Ingestion API tab's "Dry run" in a real browser: an admin opens a model's tab,
presses Dry run with the sample payload, and reads what it would change, entry by entry,
while nothing is stored. Screenshot for docs/console.md (CDP_SCREENSHOTS=1)."""

from __future__ import annotations

import json

from cdp import services
from cdp.models import EntityRecord
from ingestion.models import IngestionRequest
from journeys.models import UserEvent
from tests.browser.conftest import organization_admin, sign_in


def test_a_dry_run_shows_the_changes_and_stores_nothing(console_server, new_page, screenshot):
    admin = organization_admin("Acme Retail", "ops@acme.test")
    model = services.custom_model_create(
        organization=admin.organization, name="Loyalty Member", tags=[]
    )
    services.field_definition_create(
        organization=admin.organization, data_model=model, name="customField01", label="Tier"
    )
    page = new_page()
    sign_in(page, console_server, admin.username)

    page.goto(f"{console_server}/console/cdp/datamodel/{model.pk}/change/#tab-ingestion")
    page.wait_for_selector("#sample-payload")
    assert page.locator("#tab-ingestion").is_visible()
    sample = json.loads(page.locator("#id_payload").input_value())
    ref_id = sample["entries"][0]["refId"]
    page.click("#dry-run-test-payload")

    page.wait_for_selector("#dry-run-table")
    assert page.locator("#dry-run-heading").inner_text() == "Dry run: nothing was stored"
    assert (
        page.locator("#dry-run-summary").inner_text().startswith("Of 1 entry: 1 would be created")
    )
    rows = page.locator("#dry-run-table tr.dry-run-entry")
    assert rows.count() == 1
    cells = rows.nth(0).locator("td").all_inner_texts()
    assert cells[:3] == ["0", ref_id, "would be created"], cells
    assert "customField01: — → example" in cells[3], cells
    assert page.locator("#test-ingest-status").inner_text() == "200"
    assert page.locator("#test-ingest-log-link").count() == 0
    screenshot(page, "17-dry-run")

    organization = admin.organization
    assert not EntityRecord.objects.filter(organization=organization).exists()
    assert not UserEvent.objects.filter(organization=organization).exists()
    assert not IngestionRequest.objects.filter(organization=organization).exists()
