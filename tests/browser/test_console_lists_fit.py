"""Every Console list fits a laptop's 1366×768 screen: no page scrolls sideways, and no
results table runs out of its box, for a superuser and for a tenant admin, with rows of
realistic data (long request ids, event ids, emails, URLs, error messages).

The lists are every model of `console_site._registry`, so a list added later is checked too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from cdp.console import console_site
from cdp.models import ErasureRequest
from ingestion.destinations import destination_create
from ingestion.models import CallbackDelivery, DestinationDelivery, IngestionRequest
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.browser.conftest import (
    PASSWORD,
    Admin,
    api_ingest,
    api_token,
    organization_admin,
    sign_in,
)

LAPTOP = {"width": 1366, "height": 768}
FITS = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
WIDTHS = "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
# Every results table's box: Django's `.results` div (and any wrapper around a table).
TABLES_OVERFLOWING = """
[...new Set([...document.querySelectorAll('#changelist .results, #result_list')]
  .map(el => el.tagName === 'TABLE' ? el.parentElement : el))]
  .filter(el => el.scrollWidth > el.clientWidth)
  .map(el => [el.className || el.id, el.scrollWidth, el.clientWidth])
"""
# Said when a list does not fit: the width of each column, to see which one to narrow.
COLUMN_WIDTHS = """
[...document.querySelectorAll('#result_list thead th')]
  .map(th => `${th.className.split(' ')[0]}=${th.offsetWidth}`).join(' ')
"""
# And the innermost elements that reach past the screen's right edge.
PAST_THE_EDGE = """
[...document.querySelectorAll('#content *')]
  .filter(el => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .filter(el => ![...el.children].some(c => c.getBoundingClientRect().right >
      document.documentElement.clientWidth + 1))
  .slice(0, 3).map(el => el.outerHTML.slice(0, 160)).join(" | ")
"""


def _realistic_rows(base: str, admin: Admin) -> None:
    """A few rows of everything the Console lists, with long values where they are."""
    organization = admin.organization
    model = organization.data_models.get(kind="system", object_type="customer-identity")
    config = journey_event_config_create(
        organization=organization,
        data_model=model,
        trigger="Created",
        settings=UserEventSettings(
            event_name="customer_loyalty_membership_created",
            category="UserIdentity",
            channel="Offline",
        ),
    )
    token = api_token(base, admin)
    entries = [
        {
            "customerId": f"CUST-2026-{n:010}",
            "email": f"nguyen.thi.lan.{n}@very-long-company-domain.example.com",
            "phone": f"09{n:08}",
            "fullName": f"Nguyễn Thị Lan Phương {n}",
        }
        for n in range(1, 5)
    ]
    status, answer = api_ingest(
        base,
        admin,
        token,
        {
            "objectType": "customer-identity",
            "source": "CRM-SALESFORCE-PRODUCTION",
            "jeConfigId": config.config_id,
            "entries": entries,
        },
    )
    assert status == 200, answer
    # A rejected request: its error code and message are long.
    api_ingest(
        base, admin, token, {"objectType": "customer-identity", "source": "POS", "entries": [{}]}
    )
    now = timezone.now()
    request_id = IngestionRequest.objects.filter(organization=organization).first().request_id
    CallbackDelivery.objects.create(
        organization=organization,
        request_id=request_id,
        api_key_prefix="abcdefgh",
        body="{}",
        entries=3,
        status="failed",
        attempts=8,
        next_attempt_at=now,
        last_status_code=503,
        last_error="HTTPSConnectionPool(host='callbacks.very-long-company-domain.example.com', "
        "port=443): Max retries exceeded with url: /hooks/cdp/ingest-results",
        created_at=now,
    )
    destination, _secret = destination_create(
        organization=organization,
        name="Data warehouse (BigQuery) production",
        url="https://ingest.very-long-company-domain.example.com/webhooks/cdp/events/v1",
        events=["customer_loyalty_membership_created"],
    )
    DestinationDelivery.objects.create(
        organization=organization,
        destination=destination,
        webhook_id="msg_2Q8r7cV1sYx3LkP0aBcDeFgHiJkLmNoP",
        request_id=request_id,
        event_ids=["e" * 32],
        status="pending",
        next_attempt_at=now + timedelta(minutes=5),
        last_status_code=500,
        last_error="Internal Server Error from https://ingest.very-long-company-domain.example",
        created_at=now,
    )
    ErasureRequest.objects.create(
        organization=organization,
        erasure_id="3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c1e",
        identifiers=["customerId", "email", "phone"],
        requested_by="dpo-team@very-long-company-domain.example.com",
        records=1,
        events=1,
        created_at=now,
    )


def _changelist_urls() -> list[tuple[str, str]]:
    urls = []
    for model in console_site._registry:
        opts = model._meta
        name = f"{console_site.name}:{opts.app_label}_{opts.model_name}_changelist"
        urls.append((opts.label, reverse(name)))
    return sorted(urls)


def _overflowing_lists(page: Any, base: str) -> list[str]:
    found = []
    for label, url in _changelist_urls():
        page.goto(f"{base}{url}")
        if label == "cdp.Organization" and "/change/" in page.url:
            continue  # a member of one organization lands on its page: not a list
        page.wait_for_selector("#changelist")
        rows = page.locator("#result_list tbody tr").count()
        assert rows > 0, f"{label}: no rows to check ({url})"
        overflowing = (
            []
            if page.evaluate(FITS)
            else [f"page {page.evaluate(WIDTHS)} at {page.evaluate(PAST_THE_EDGE)}"]
        )
        overflowing += [f"table box {box}" for box in page.evaluate(TABLES_OVERFLOWING)]
        if overflowing:
            found.append(f"{label}: {', '.join(overflowing)}; {page.evaluate(COLUMN_WIDTHS)}")
    return found


def test_every_console_list_fits_a_laptop_screen(console_server, new_page):
    base = console_server
    acme = organization_admin("Acme Retail Vietnam Joint Stock Company", "ops@acme.test")
    globex = organization_admin("Globex Corporation International", "ops@globex.test")
    _realistic_rows(base, acme)
    _realistic_rows(base, globex)
    get_user_model().objects.create_superuser(
        username="root@cdp.test", email="root@cdp.test", password=PASSWORD
    )

    for username in (acme.username, "root@cdp.test"):
        page = new_page()
        page.set_viewport_size(LAPTOP)
        sign_in(page, base, username)
        # Every page links a favicon that resolves (no /favicon.ico 404 in the log).
        icon = page.evaluate("document.querySelector('link[rel=icon]').href")
        assert page.request.get(icon).status == 200, icon
        assert _overflowing_lists(page, base) == [], username
