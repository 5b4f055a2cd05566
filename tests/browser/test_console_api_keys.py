"""API keys in a real browser, on a laptop's screen (1366×768): an admin creates a key
from the Organization page (a name the member already uses is refused on its field),
copies the raw key from the page the create redirects to, reloads that page (no new key,
no raw key), and revokes the key through its confirmation page. Another organization's
admin gets 404 on those pages. Screenshots for docs/console.md (CDP_SCREENSHOTS=1)."""

from __future__ import annotations

from cdp import keys
from cdp.models import ApiKey
from tests.browser.conftest import organization_admin, sign_in

LAPTOP = {"width": 1366, "height": 768}


def test_create_a_key_reload_its_page_and_revoke_it_after_confirming(
    console_server, new_page, screenshot
):
    acme = organization_admin("Acme Retail", "ops@acme.test")  # holds a key "crm-sync"
    globex = organization_admin("Globex", "ops@globex.test")
    page = new_page(permissions=["clipboard-read", "clipboard-write"])
    page.set_viewport_size(LAPTOP)
    sign_in(page, console_server, acme.username)
    console = f"{console_server}/console"

    # From the Organization page: "+ Create API key", the organization and member chosen.
    page.goto(f"{console}/cdp/organization/{acme.organization.pk}/change/")
    page.click("#create-api-key")
    page.wait_for_selector("#apikey_form")
    assert page.locator("#id_organization").input_value() == str(acme.organization.pk)

    # A name the member's live key already has: refused under the name field.
    page.fill("#id_name", "crm-sync")
    page.click("#create-api-key-submit")
    page.wait_for_selector(".field-name .errorlist")
    assert "already has an API key named “crm-sync”" in page.locator(".field-name").inner_text()
    assert ApiKey.objects.filter(organization=acme.organization).count() == 1
    screenshot(page, "12a-api-key-name-taken")

    # Another name: the create redirects to the page that shows the raw key, once.
    page.fill("#id_name", "erp-export")
    page.click("#create-api-key-submit")
    page.wait_for_selector("#api-key-raw")
    api_key = ApiKey.objects.get(organization=acme.organization, name="erp-export")
    raw = page.locator("#api-key-raw").inner_text()
    assert keys.digest_matches(raw, api_key.digest)
    assert "/created/" in page.url and raw not in page.url
    page.click("#copy-api-key")
    page.wait_for_selector("#copy-api-key[data-copied='true']")
    assert page.evaluate("navigator.clipboard.readText()") == raw
    screenshot(page, "12b-api-key-created")

    # Reloading that page creates nothing and shows the key without its raw value.
    rows = ApiKey.objects.count()
    page.reload()
    page.wait_for_selector("#api-key-shown")
    assert ApiKey.objects.count() == rows
    assert page.locator("#api-key-raw").count() == 0
    assert raw not in page.content()
    assert "was shown once" in page.locator("#api-key-shown").inner_text()
    screenshot(page, "12c-api-key-reloaded")

    # Revoke…: a confirmation page first; Cancel leaves the key live.
    page.click("#revoke-api-key")
    page.wait_for_selector("#revoke-question")
    assert page.locator("#revoke-question").inner_text() == (
        f"Revoke key erp-export ({api_key.prefix}…)? Its tokens stop working at once."
    )
    screenshot(page, "12d-api-key-revoke")
    page.click("#revoke-cancel")
    page.wait_for_selector("#revoke-api-key")  # the key's page, its "Revoke…" still there
    api_key.refresh_from_db()
    assert api_key.revoked_at is None

    # Confirm: revoked, and the list says so.
    page.click("#revoke-api-key")
    page.click("#revoke-confirm")
    page.wait_for_selector(".messagelist")
    assert "Revoked API key “erp-export" in page.locator(".messagelist").inner_text()
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    row = page.locator("#result_list tr", has_text="erp-export")
    assert "Revoked" in row.inner_text()
    assert raw not in page.content()

    # Globex's admin: Acme's key pages are missing, not forbidden.
    other = new_page()
    other.set_viewport_size(LAPTOP)
    sign_in(other, console_server, globex.username)
    for path in (f"{api_key.pk}/change/", f"{api_key.pk}/revoke/"):
        response = other.goto(f"{console}/cdp/apikey/{path}")
        assert response is not None and response.status == 404, path
