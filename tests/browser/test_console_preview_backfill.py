"""A User Event's "Preview on real records" and "Backfill…" in a real browser: an admin
previews the saved filter on the model's records, reads which would fire and why, then
backfills: the count and a sample first, the run queued, its result on the page.
Screenshots for docs/console.md (CDP_SCREENSHOTS=1)."""

from __future__ import annotations

import uuid
from io import StringIO

from django.core.management import call_command

from cdp import services
from ingestion import pipeline
from journeys.models import UserEvent
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.browser.conftest import organization_admin, sign_in


def test_preview_then_backfill_a_user_event(console_server, new_page, screenshot):
    admin = organization_admin("Acme Retail", "ops@acme.test")
    organization = admin.organization
    model = services.custom_model_create(organization=organization, name="Loyalty Member", tags=[])
    for name, label in (("customField01", "Tier"), ("customFieldLong01", "Points")):
        services.field_definition_create(
            organization=organization, data_model=model, name=name, label=label
        )
    entries = [
        {
            "momCode": model.mom_code,
            "refId": f"M-{n}",
            "customFieldTexts": {"customField01": tier},
            "customFieldLongs": {"customFieldLong01": points},
        }
        for n, (tier, points) in enumerate(
            [("gold", 900), ("silver", 120), ("gold", 640), ("bronze", 30)]
        )
    ]
    answer = pipeline.ingest(
        organization=organization,
        api_key=None,
        request_id=uuid.uuid4().hex,
        data={"objectType": "custom-model", "source": "CRM", "entries": entries},
    )
    assert answer.status == 200
    config = journey_event_config_create(
        organization=organization,
        data_model=model,
        trigger="Created",
        settings=UserEventSettings(
            event_name="vip_joined",
            category="UserIdentity",
            filters={
                "match": "all",
                "conditions": [{"field": "customFieldLong01", "operator": "gte", "value": 500}],
            },
        ),
    )
    page = new_page()
    sign_in(page, console_server, admin.username)
    change_url = f"{console_server}/console/journeys/journeyeventconfig/{config.pk}/change/"

    page.goto(change_url)
    page.click("#user-event-preview")
    page.wait_for_selector("#preview-summary")
    assert page.locator("#preview-summary").inner_text().startswith("2 of 4 would fire")
    rows = page.locator("#preview-records tbody tr")
    assert rows.count() == 4
    texts = "\n".join(rows.all_inner_texts())
    assert "customFieldLong01 ≥ 500: 900 — yes" in texts
    assert "customFieldLong01 ≥ 500: 30 — no" in texts
    screenshot(page, "18-user-event-preview")
    assert not UserEvent.objects.filter(organization=organization).exists()

    page.goto(change_url)
    page.click("#user-event-backfill-start")
    page.wait_for_selector("#backfill-count")
    assert page.locator("#backfill-count").inner_text().startswith("2 events would be generated")
    assert page.locator("#backfill-sample tbody tr").count() == 2
    screenshot(page, "19-user-event-backfill")
    page.click("#backfill-run")
    page.wait_for_selector("#user-event-backfill")

    call_command("run_worker", "--once", stdout=StringIO())
    page.reload()
    page.wait_for_selector("#backfill-last")
    assert "2 events generated" in page.locator("#backfill-last").inner_text()
    screenshot(page, "20-user-event-backfill-done")
    stored = UserEvent.objects.filter(organization=organization, config=config)
    assert sorted(e.source_id for e in stored) == ["M-0", "M-2"]
    assert all(e.properties["backfill"] is True for e in stored)
