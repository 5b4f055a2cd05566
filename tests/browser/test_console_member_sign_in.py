"""A new member's first sign-in in a real browser, at a laptop's 1366×768: an admin adds
them on the Organization page and copies their one-time set-password link from the page
that follows; the member opens it in a browser of their own (signed out), sets a password,
signs in with their email and it, and sees the Console. The link then works no more.
Screenshots for docs/console.md (CDP_SCREENSHOTS=1)."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from cdp.models import Membership
from tests.browser.conftest import organization_admin, sign_in

LAPTOP = {"width": 1366, "height": 768}
NEW_MEMBER = "dana.reyes@acme.test"
NEW_PASSWORD = "violet-harbour-lantern-42"


def test_a_member_added_in_the_console_sets_a_password_and_signs_in(
    console_server, new_page, screenshot
):
    admin = organization_admin("Acme Retail", "ops@acme.test")
    page = new_page(permissions=["clipboard-read", "clipboard-write"])
    page.set_viewport_size(LAPTOP)
    sign_in(page, console_server, admin.username)

    # The admin adds the member by email and role on the Organization page, and saves.
    page.goto(f"{console_server}/console/cdp/organization/{admin.organization.pk}/change/")
    page.fill("#id_memberships-1-username", NEW_MEMBER)
    page.select_option("#id_memberships-1-role", "editor")
    page.click("input[name=_save]")

    # The next page shows the member's link, once, with a copy button.
    page.wait_for_selector("#set-password-link-1")
    link = page.locator("#set-password-link-1").inner_text()
    assert link.startswith(f"{console_server}/console/set-password/")
    assert NEW_MEMBER in page.locator("#set-password-links").inner_text()
    page.click("[data-copy-target='set-password-link-1']")
    page.wait_for_selector("[data-copy-target='set-password-link-1'][data-copied='true']")
    assert page.evaluate("navigator.clipboard.readText()") == link
    screenshot(page, "21-member-set-password-link")
    page.click("#set-password-links-done")
    page.wait_for_selector("#id_memberships-0-role")
    assert link not in page.content()
    # Rows by email: the new member's, then the admin's.
    states = page.locator("td.field-password_state").all_inner_texts()
    assert [state.strip() for state in states[:2]] == [
        "not set yet New set-password link…",
        "set",
    ]
    screenshot(page, "22-member-password-not-set")

    # The member, in a browser of their own: the link, then a password twice.
    member = new_page()
    member.set_viewport_size(LAPTOP)
    member.goto(link)
    member.wait_for_selector("#set-password-form")
    assert member.url.endswith("/choose/")  # the token is out of the address bar
    assert NEW_MEMBER in member.locator("#set-password-intro").inner_text()
    member.fill("#id_new_password1", NEW_PASSWORD)
    member.fill("#id_new_password2", NEW_PASSWORD)
    screenshot(member, "23-set-password")
    member.click("#set-password-submit")

    # The sign-in page, which asks for the email, says the password is set.
    member.wait_for_selector("#login-form")
    assert "Your password is set" in member.locator(".messagelist").inner_text()
    assert member.locator("label[for=id_username]").inner_text() == "Email:"
    member.fill("#id_username", NEW_MEMBER)
    member.fill("#id_password", NEW_PASSWORD)
    screenshot(member, "24-member-sign-in")
    member.click("#login-form input[type=submit]")
    member.wait_for_selector("#user-tools")
    assert NEW_MEMBER in (member.locator("#user-tools").text_content() or "")
    assert member.locator("#content-main").get_by_role("link", name="Organization").count() == 1
    user = get_user_model().objects.get(username=NEW_MEMBER)
    assert Membership.objects.get(user=user).role == "editor"

    # The link is spent.
    again = new_page()
    again.goto(link)
    assert "This link was used or has expired" in again.locator("#content-main").inner_text()
