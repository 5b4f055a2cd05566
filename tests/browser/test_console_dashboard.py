"""The Console's home page, the dashboard, in a real browser at 1366×768: the chart of the
last 24 hours and the numbers of the signed-in admin's organization (not another's), no
horizontal scrolling, and a number's link opening the list it counts, filtered.
Screenshot for docs/console.md (CDP_SCREENSHOTS=1)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.utils import timezone

from cdp import services
from cdp.console import dashboard_window
from ingestion.destinations import destination_create
from ingestion.models import (
    CallbackDelivery,
    CallbackStatus,
    DestinationDelivery,
    IngestionRequest,
)
from journeys.models import JourneyEventConfig, config_id_generate, event_key_generate
from tests.browser.conftest import api_ingest, api_token, organization_admin, sign_in

LAPTOP = {"width": 1366, "height": 768}
# Entries ingested and rejected in earlier hours of the window, by hours before the
# current one: the chart's shape.
EARLIER = {
    23: (40, 2),
    20: (120, 0),
    18: (95, 11),
    14: (60, 4),
    9: (180, 6),
    5: (75, 0),
    2: (30, 9),
}


def _logged(organization: Any, at: Any, ingested: int, failed: int, message: str) -> None:
    results = [
        {"index": n, "refId": f"R-{n}", "status": 101, "errorMessage": message}
        for n in range(failed)
    ]
    row = IngestionRequest.objects.create(
        organization=organization,
        request_id=uuid.uuid4().hex,
        object_type="custom-model",
        source="CRM",
        total=ingested + failed,
        created=ingested // 3,
        updated=ingested - ingested // 3,
        failed=failed,
        results=results,
        status=200,
    )
    IngestionRequest.objects.filter(pk=row.pk).update(created_at=at)


def _failed_outboxes(organization: Any) -> None:
    now = timezone.now()
    for _ in range(2):
        CallbackDelivery.objects.create(
            organization=organization,
            request_id=uuid.uuid4().hex,
            body="{}",
            status=CallbackStatus.FAILED,
            attempts=10,
            next_attempt_at=now,
            created_at=now,
        )
    destination, _ = destination_create(
        organization=organization, name="Warehouse", url="https://warehouse.example/events"
    )
    for _ in range(3):
        DestinationDelivery.objects.create(
            organization=organization,
            destination=destination,
            webhook_id=f"msg_{uuid.uuid4().hex}",
            request_id=uuid.uuid4().hex,
            event_ids=[],
            status=CallbackStatus.FAILED,
            next_attempt_at=now,
            created_at=now,
        )


def test_the_home_page_shows_the_organizations_last_24_hours(console_server, new_page, screenshot):
    base = console_server
    acme = organization_admin("Acme Retail", "ops@acme.test")
    globex = organization_admin("Globex", "ops@globex.test")
    model = services.custom_model_create(organization=acme.organization, name="Loyalty Member")
    config = JourneyEventConfig.objects.create(
        organization=acme.organization,
        data_model=model,
        config_id=config_id_generate(group_key=acme.organization.group_key, trigger="Created"),
        event_key=event_key_generate(),
        trigger="Created",
        event_name="member_joined",
        category="UserIdentity",
    )
    # This hour: a request over real HTTP, three entries stored (three events), one
    # rejected.
    status, body = api_ingest(
        base,
        acme,
        api_token(base, acme),
        {
            "objectType": "custom-model",
            "source": "CRM",
            "jeConfigId": config.config_id,
            "entries": [
                *({"momCode": model.mom_code, "refId": f"M-{n}"} for n in range(3)),
                {"momCode": model.mom_code},
            ],
        },
    )
    assert status == 200 and (body["created"], body["failed"]) == (3, 1), body
    message = body["results"][3]["errorMessage"]
    _, end = dashboard_window()
    for hours_before, (ingested, failed) in EARLIER.items():
        at = end - timedelta(hours=hours_before + 1, minutes=-20)
        _logged(acme.organization, at, ingested, failed, message)
    _logged(globex.organization, end - timedelta(hours=3), 9_999, 777, "Globex's own")
    _failed_outboxes(acme.organization)
    ingested_total = 3 + sum(ingested for ingested, _ in EARLIER.values())
    rejected_total = 1 + sum(failed for _, failed in EARLIER.values())

    page = new_page()
    page.set_viewport_size(LAPTOP)
    sign_in(page, base, acme.username)
    page.wait_for_selector("#ingestion-chart")

    assert page.locator("#ingestion-chart rect.bar-ingested").count() == 24
    assert page.locator("#ingestion-chart rect.bar-rejected").count() == 24
    tallest = page.locator("#ingestion-chart rect.bar-ingested").evaluate_all(
        "bars => Math.max(...bars.map(bar => bar.getBoundingClientRect().height))"
    )
    assert tallest > 50  # drawn, and visibly
    assert page.locator("#dashboard-ingested strong").inner_text() == f"{ingested_total:,}"
    assert page.locator("#dashboard-rejected strong").inner_text() == f"{rejected_total:,}"
    assert message in page.locator("#rejection-messages").inner_text()
    assert "member_joined" in page.locator("#user-event-counts").inner_text()
    assert page.locator("#dashboard-callbacks-failed strong").inner_text() == "2"
    assert "Warehouse" in page.locator("#failing-destinations").inner_text()
    assert "Globex" not in page.locator("#dashboard").inner_text()
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    screenshot(page, "02-console-dashboard")

    # The rejected count opens the Ingestion log of the requests that rejected entries.
    page.click("#dashboard-rejected")
    page.wait_for_selector("#result_list")
    assert "failed__gt=0" in page.url
    rejecting = 1 + sum(1 for _, failed in EARLIER.values() if failed)
    assert page.locator("#result_list tbody tr").count() == rejecting

    # A User Event's count opens the Event log of its events.
    page.go_back()
    page.locator("#user-event-counts a[data-config]").click()
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 3
    assert all("member_joined" in text for text in rows.all_inner_texts())
