"""The Console's callback screens in a real browser: an admin sets the callback URL and
turns callbacks on, copies the signing secret from the one page that shows it, finds a
failed delivery in Callback deliveries, reads its last error and body, and sends it
again with "Retry now". Screenshots for docs/console.md (CDP_SCREENSHOTS=1)."""

from __future__ import annotations

import json

from django.utils import timezone

from cdp.models import Organization
from ingestion.models import CallbackDelivery, CallbackStatus
from tests.browser.conftest import organization_admin, sign_in

PARTNER_URL = "https://partner.example/cdp-callback"


def _failed_delivery(organization, request_id: str) -> CallbackDelivery:
    now = timezone.now()
    body = {
        "data": {
            "R-1001": {"status": 200, "cdpId": "TAb2P9brterOhKPqOJvs"},
            "R-1002": {"status": 101, "errorMessage": "Missing momCode"},
        }
    }
    return CallbackDelivery.objects.create(
        organization=organization,
        request_id=request_id,
        api_key_prefix="3f9a12c4",
        body=json.dumps(body, separators=(",", ":")),
        entries=2,
        status=CallbackStatus.FAILED,
        attempts=10,
        next_attempt_at=now,
        last_attempt_at=now,
        last_status_code=503,
        last_error="HTTP 503: Service Unavailable (partner is down for maintenance)",
        created_at=now,
    )


def test_callback_settings_secret_once_and_a_failed_delivery_retried(
    console_server, new_page, screenshot
):
    admin = organization_admin("Acme Retail", "ops@acme.test")
    page = new_page(permissions=["clipboard-read", "clipboard-write"])
    sign_in(page, console_server, admin.username)
    org_url = f"{console_server}/console/cdp/organization/{admin.organization.pk}/change/"

    # The Organization page: the callback URL and switch, then Save.
    page.goto(org_url)
    page.fill("#id_callback_url", PARTNER_URL)
    page.check("#id_callback_enabled")
    screenshot(page, "13-callback-settings")
    page.click("input[name=_save]")

    # The next page shows the generated secret, once, with a copy button.
    page.wait_for_selector("#callback-secret-raw")
    secret = Organization.objects.get(pk=admin.organization.pk).callback_secret
    assert page.locator("#callback-secret-raw").inner_text() == secret
    page.click("#copy-callback-secret")
    page.wait_for_selector("#copy-callback-secret[data-copied='true']")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    screenshot(page, "14-callback-secret")

    # Back on the Organization page: the settings, the secret not shown.
    page.click("#callback-secret-done")
    page.wait_for_selector("#id_callback_url")
    assert page.locator("#id_callback_url").input_value() == PARTNER_URL
    assert page.locator("#id_callback_enabled").is_checked()
    assert secret not in page.content()

    # A failed delivery: the Organization page links to it, the list shows it in red.
    delivery = _failed_delivery(admin.organization, "5b0c8a0f2f7e4d4f9b3d7b8a4c1e2f30")
    page.reload()
    page.click("#callback-failed-link")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list .callback-status-failed").count() == 1
    screenshot(page, "15-callback-deliveries", wide=True)

    # Its page: the whole last error and the body sent.
    page.click(f"#result_list a[href*='/callbackdelivery/{delivery.pk}/change/']")
    page.wait_for_selector("#callback-body")
    assert "partner is down for maintenance" in page.locator(".callback-last-error").inner_text()
    assert "Missing momCode" in page.locator("#callback-body").inner_text()
    screenshot(page, "16-callback-delivery")

    # "Retry now" from the list: the delivery is pending again, with fresh attempts.
    page.goto(f"{console_server}/console/ingestion/callbackdelivery/?status__exact=failed")
    page.check(f"#result_list input.action-select[value='{delivery.pk}']")
    page.select_option("select[name=action]", "retry_now")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    assert "will be sent again" in page.locator(".messagelist").inner_text()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (CallbackStatus.PENDING, 0)
    assert secret not in page.content()
