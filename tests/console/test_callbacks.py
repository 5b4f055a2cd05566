"""The Console's callback screens (issue 7 item 1, issue 5 item 5): the callback URL and
switch on the Organization page (callback_settings_set, SSRF errors on the field), the
signing secret shown once after it was generated or rotated (callback_secret_rotate) and
on no later page, and the Callback deliveries list (read-only, tenant-scoped, failed ones
standing out, "Retry now" through callback_delivery_retry). Two organizations throughout:
A (the signed-in member's) and B."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone

from cdp.callback_settings import callback_settings_set
from cdp.models import Organization
from ingestion.models import CallbackDelivery, CallbackStatus
from tests.console.conftest import form_data, url

PARTNER_URL = "https://partner.example/cdp-callback"
LONG_ERROR = "HTTP 503 from the partner: " + "upstream unavailable; " * 20


def _org_page(console, tenant):
    return console.get(url("cdp_organization_change", tenant.organization.pk))


def _save_callback(console, tenant, *, callback_url, enabled, **changes):
    """POST the Organization page as a browser would, with the callback fields changed."""
    data = form_data(_org_page(console, tenant))
    data["callback_url"] = callback_url
    if enabled:
        data["callback_enabled"] = "on"
    else:
        data.pop("callback_enabled", None)
    data.update(changes)
    return console.post(url("cdp_organization_change", tenant.organization.pk), data)


def _stored(tenant) -> Organization:
    return Organization.objects.get(pk=tenant.organization.pk)


def _delivery(tenant, request_id, status=CallbackStatus.PENDING, **fields):
    now = timezone.now()
    body = {"data": {f"R-{request_id}": {"status": 200, "cdpId": f"cdp-{request_id}"}}}
    return CallbackDelivery.objects.create(
        organization=tenant.organization,
        request_id=request_id,
        api_key_prefix=tenant.api_key.prefix,
        body=json.dumps(body, separators=(",", ":")),
        entries=1,
        status=status,
        next_attempt_at=fields.pop("next_attempt_at", now),
        created_at=fields.pop("created_at", now),
        **fields,
    )


@pytest.fixture
def deliveries(tenant_a, tenant_b):
    """A: one failed (10 attempts, a long last error), one pending, one delivered; B: one
    failed."""
    now = timezone.now()
    return {
        "a_failed": _delivery(
            tenant_a,
            "a1failed",
            CallbackStatus.FAILED,
            attempts=10,
            last_status_code=503,
            last_error=LONG_ERROR[:500],
            last_attempt_at=now,
        ),
        "a_pending": _delivery(
            tenant_a,
            "a2pending",
            attempts=2,
            last_status_code=500,
            last_error="HTTP 500",
            next_attempt_at=now + timedelta(minutes=4),
        ),
        "a_delivered": _delivery(
            tenant_a,
            "a3delivered",
            CallbackStatus.DELIVERED,
            attempts=1,
            last_status_code=200,
            delivered_at=now,
        ),
        "b_failed": _delivery(
            tenant_b, "b1failed", CallbackStatus.FAILED, attempts=10, last_error="HTTP 502"
        ),
    }


def _pages_after(console, tenant, deliveries=None) -> str:
    """Every page a member may open afterwards that could carry the secret."""
    pages = [
        url("cdp_organization_change", tenant.organization.pk),
        url("cdp_organization_history", tenant.organization.pk),
        # A member of one organization is sent to its page; a search shows the list.
        url("cdp_organization_changelist") + "?q=",
        url("cdp_organization_callback_secret_rotate", tenant.organization.pk),
        url("ingestion_callbackdelivery_changelist"),
        url("ingestion_callbackdelivery_changelist") + "?status__exact=failed",
        url("index"),
    ]
    for delivery in (deliveries or {}).values():
        if delivery.organization_id == tenant.organization.pk:
            pages.append(url("ingestion_callbackdelivery_change", delivery.pk))
            pages.append(url("ingestion_callbackdelivery_history", delivery.pk))
    html = []
    for page in pages:
        response = console.get(page)
        assert response.status_code == 200, page
        html.append(response.content.decode())
    return "\n".join(html)


# --- callback settings on the Organization page ------------------------------------------


@pytest.mark.parametrize("manager", ["admin_a", "owner_a"])
def test_setting_the_first_url_shows_the_new_secret_once_and_on_no_later_page(
    console, tenant_a, deliveries, manager, request
):
    console.force_login(request.getfixturevalue(manager))

    response = _save_callback(console, tenant_a, callback_url=PARTNER_URL, enabled=True)

    stored = _stored(tenant_a)
    assert (stored.callback_url, stored.callback_enabled) == (PARTNER_URL, True)
    secret = stored.callback_secret
    assert len(secret) == 64
    # The response to the save itself shows it, with a copy button, and is not cached.
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert response.context["callback_secret"] == secret
    page = response.content.decode()
    assert f'<code id="callback-secret-raw" class="copy-source">{secret}</code>' in page
    assert 'data-copy-target="callback-secret-raw"' in page
    assert "shown this once and never again" in page

    # Never again: not on the organization's page (nor in its form), its history, the
    # lists, the deliveries' pages.
    later = _pages_after(console, tenant_a, deliveries)
    assert secret not in later
    assert "set on" in later and "(not shown)" in later
    assert secret not in str(_org_page(console, tenant_a).context["adminform"].form.initial)
    assert not any(secret in entry.change_message for entry in LogEntry.objects.all()), (
        "the history must not carry the secret"
    )

    # A later change of the URL keeps the secret and shows nothing: the usual redirect.
    again = _save_callback(console, tenant_a, callback_url=PARTNER_URL + "/v2", enabled=True)
    assert again.status_code == 302
    assert _stored(tenant_a).callback_secret == secret
    assert _stored(tenant_a).callback_url == PARTNER_URL + "/v2"
    assert secret not in _pages_after(console, tenant_a, deliveries)


def test_the_url_refused_by_the_ssrf_guard_is_shown_on_the_field_and_nothing_is_saved(
    console, admin_a, tenant_a, settings
):
    settings.CDP_CALLBACK_ALLOW_PRIVATE = False
    console.force_login(admin_a)

    response = _save_callback(
        console,
        tenant_a,
        callback_url="http://127.0.0.1:8000/cdp-callback",
        enabled=True,
        name="Acme Renamed",
    )

    assert response.status_code == 200
    form = response.context["adminform"].form
    [message] = form.errors["callback_url"]
    assert "resolves to 127.0.0.1, a loopback address" in message
    assert "callbacks go to public addresses only" in response.content.decode()
    stored = _stored(tenant_a)
    # The whole post was rolled back: the name too.
    assert (stored.name, stored.callback_url, stored.callback_enabled) == ("Acme Retail", "", False)
    assert stored.callback_secret == ""


def test_turning_callbacks_on_without_a_url_is_refused_on_the_switch(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = _save_callback(console, tenant_a, callback_url="", enabled=True)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["callback_enabled"] == [
        "Set a callback URL before turning callbacks on."
    ]
    assert _stored(tenant_a).callback_enabled is False


def test_turning_callbacks_off_keeps_the_url_and_the_secret(console, admin_a, tenant_a):
    secret = callback_settings_set(
        organization=tenant_a.organization, url=PARTNER_URL, enabled=True
    )
    console.force_login(admin_a)

    response = _save_callback(console, tenant_a, callback_url=PARTNER_URL, enabled=False)

    assert response.status_code == 302
    stored = _stored(tenant_a)
    assert (stored.callback_url, stored.callback_enabled) == (PARTNER_URL, False)
    assert stored.callback_secret == secret
    assert secret not in _org_page(console, tenant_a).content.decode()


def test_callbacks_can_be_turned_off_when_the_stored_url_is_now_refused(
    console, admin_a, tenant_a, settings
):
    # Set while private addresses were allowed; production refuses them now.
    callback_settings_set(
        organization=tenant_a.organization, url="http://127.0.0.1:9/cb", enabled=True
    )
    settings.CDP_CALLBACK_ALLOW_PRIVATE = False
    console.force_login(admin_a)

    off = _save_callback(console, tenant_a, callback_url="http://127.0.0.1:9/cb", enabled=False)
    on_again = _save_callback(console, tenant_a, callback_url="http://127.0.0.1:9/cb", enabled=True)

    assert off.status_code == 302
    assert _stored(tenant_a).callback_enabled is False
    assert on_again.status_code == 200
    assert "loopback address" in on_again.context["adminform"].form.errors["callback_url"][0]
    assert _stored(tenant_a).callback_enabled is False


def test_removing_the_url(console, admin_a, tenant_a):
    callback_settings_set(organization=tenant_a.organization, url=PARTNER_URL, enabled=False)
    console.force_login(admin_a)

    response = _save_callback(console, tenant_a, callback_url="", enabled=False)

    assert response.status_code == 302
    assert _stored(tenant_a).callback_url == ""


def test_rotation_replaces_the_stored_secret_and_shows_the_new_one_once(
    console, admin_a, tenant_a, tenant_b, deliveries
):
    first = callback_settings_set(organization=tenant_a.organization, url=PARTNER_URL, enabled=True)
    other = callback_settings_set(organization=tenant_b.organization, url=PARTNER_URL, enabled=True)
    console.force_login(admin_a)
    page = _org_page(console, tenant_a).content.decode()
    rotate_url = url("cdp_organization_callback_secret_rotate", tenant_a.organization.pk)
    assert f'href="{rotate_url}"' in page

    confirm = console.get(rotate_url)
    assert confirm.status_code == 200
    assert first not in confirm.content.decode()
    assert _stored(tenant_a).callback_secret == first  # a GET changes nothing

    response = console.post(rotate_url)

    second = _stored(tenant_a).callback_secret
    assert second != first and len(second) == 64
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert response.context["callback_secret"] == second
    shown = response.content.decode()
    assert f'<code id="callback-secret-raw" class="copy-source">{second}</code>' in shown
    assert first not in shown
    later = _pages_after(console, tenant_a, deliveries)
    assert second not in later and first not in later
    assert LogEntry.objects.filter(change_message="Rotated the callback signing secret.").exists()
    assert _stored(tenant_b).callback_secret == other


@pytest.mark.parametrize("member", ["viewer_a", "editor_a"])
def test_viewers_and_editors_cannot_change_callback_settings_nor_rotate(
    console, tenant_a, member, request
):
    secret = callback_settings_set(
        organization=tenant_a.organization, url=PARTNER_URL, enabled=True
    )
    console.force_login(request.getfixturevalue(member))

    page = _org_page(console, tenant_a)
    html = page.content.decode()
    assert page.status_code == 200
    assert PARTNER_URL in html  # shown read-only
    assert 'name="callback_url"' not in html and 'name="callback_enabled"' not in html
    assert "Owners and admins of the organization change these" in html
    rotate_url = url("cdp_organization_callback_secret_rotate", tenant_a.organization.pk)
    assert rotate_url not in html

    data = form_data(page)
    data.update({"callback_url": "https://evil.example/cb"})
    data.pop("callback_enabled", None)
    posted = console.post(url("cdp_organization_change", tenant_a.organization.pk), data)
    assert posted.status_code == 403
    assert console.get(rotate_url).status_code == 403
    assert console.post(rotate_url).status_code == 403
    stored = _stored(tenant_a)
    assert (stored.callback_url, stored.callback_enabled, stored.callback_secret) == (
        PARTNER_URL,
        True,
        secret,
    )
    assert secret not in html


def test_another_tenants_callback_settings_are_404(console, admin_a, tenant_a, tenant_b):
    secret = callback_settings_set(
        organization=tenant_b.organization, url=PARTNER_URL, enabled=True
    )
    console.force_login(admin_a)
    rotate_b = url("cdp_organization_callback_secret_rotate", tenant_b.organization.pk)

    assert console.get(rotate_b).status_code == 404
    assert console.post(rotate_b).status_code == 404
    data = form_data(_org_page(console, tenant_a))
    data.update({"callback_url": "https://evil.example/cb", "callback_enabled": "on"})
    changed = console.post(url("cdp_organization_change", tenant_b.organization.pk), data)
    assert changed.status_code == 404
    stored = _stored(tenant_b)
    assert (stored.callback_url, stored.callback_secret) == (PARTNER_URL, secret)
    assert _stored(tenant_a).callback_url == ""


# --- Callback deliveries -----------------------------------------------------------------


def test_the_deliveries_list_shows_only_the_members_rows_with_its_columns(
    console, admin_a, deliveries
):
    console.force_login(admin_a)

    response = console.get(url("ingestion_callbackdelivery_changelist"))

    assert response.status_code == 200
    listed = {row.request_id for row in response.context["cl"].result_list}
    assert listed == {"a1failed", "a2pending", "a3delivered"}
    page = response.content.decode()
    assert "b1failed" not in page
    assert url("ingestion_callbackdelivery_change", deliveries["b_failed"].pk) not in page
    for header in (
        "requestId",
        "Status",
        "Attempts",
        "Next attempt",
        "Last status code",
        "Last error",
        "Delivered at",
    ):
        assert header in page, header
    # The last error is cut short in the list; its page shows it whole.
    assert LONG_ERROR[:500] not in page
    assert LONG_ERROR[:60] in page
    # Failed ones stand out: a count with a link to them, and a red status badge.
    assert 'id="callback-failed-banner"' in page and "1 failed delivery" in page
    assert '<span class="callback-status callback-status-failed">Failed</span>' in page
    # The menu names the page in the Console's words.
    assert "Callback deliveries" in page


def test_filter_by_status_and_search_by_request_id(console, admin_a, deliveries):
    console.force_login(admin_a)
    changelist = url("ingestion_callbackdelivery_changelist")

    failed = console.get(changelist + "?status__exact=failed")
    found = console.get(changelist + "?q=a2pending")

    assert [row.request_id for row in failed.context["cl"].result_list] == ["a1failed"]
    assert 'id="callback-failed-banner"' not in failed.content.decode()
    assert [row.request_id for row in found.context["cl"].result_list] == ["a2pending"]
    assert [
        row.request_id for row in console.get(changelist + "?q=b1failed").context["cl"].result_list
    ] == []


def test_a_deliverys_page_shows_the_body_and_the_whole_last_error(console, admin_a, deliveries):
    console.force_login(admin_a)
    failed = deliveries["a_failed"]

    response = console.get(url("ingestion_callbackdelivery_change", failed.pk))

    assert response.status_code == 200
    page = response.content.decode()
    assert LONG_ERROR[:500].replace("'", "&#x27;") in page
    assert "R-a1failed" in page and "cdp-a1failed" in page
    assert json.dumps(json.loads(failed.body), indent=2).replace('"', "&quot;") in page
    # Read-only: no field to edit, no save button, and "Retry now" for a failed one.
    assert not response.context["adminform"].form.fields
    assert 'name="_save"' not in page
    assert 'id="retry-callback"' in page
    delivered = console.get(url("ingestion_callbackdelivery_change", deliveries["a_delivered"].pk))
    assert 'id="retry-callback"' not in delivered.content.decode()


@pytest.mark.parametrize("page", ["change", "history", "delete", "retry"])
def test_another_tenants_delivery_is_404(console, admin_a, deliveries, page):
    console.force_login(admin_a)
    other = deliveries["b_failed"]

    assert console.get(url(f"ingestion_callbackdelivery_{page}", other.pk)).status_code == 404
    assert console.post(url(f"ingestion_callbackdelivery_{page}", other.pk)).status_code == 404
    assert console.get(url(f"ingestion_callbackdelivery_{page}", 999_999)).status_code == 404
    assert CallbackDelivery.objects.get(pk=other.pk).status == CallbackStatus.FAILED


def test_b_sees_only_its_own_deliveries(console, admin_b, deliveries):
    console.force_login(admin_b)

    response = console.get(url("ingestion_callbackdelivery_changelist"))

    assert [row.request_id for row in response.context["cl"].result_list] == ["b1failed"]
    assert (
        console.get(url("ingestion_callbackdelivery_change", deliveries["a_failed"].pk)).status_code
        == 404
    )


def test_deliveries_are_neither_added_changed_nor_deleted(console, admin_a, deliveries):
    console.force_login(admin_a)
    own = deliveries["a_failed"]
    before = CallbackDelivery.objects.filter(pk=own.pk).values().get()

    assert console.get(url("ingestion_callbackdelivery_add")).status_code == 403
    assert console.get(url("ingestion_callbackdelivery_delete", own.pk)).status_code == 403
    changed = console.post(url("ingestion_callbackdelivery_change", own.pk), {"status": "pending"})
    assert changed.status_code == 403
    assert CallbackDelivery.objects.filter(pk=own.pk).values().get() == before


@pytest.mark.parametrize("manager", ["admin_a", "owner_a"])
def test_retry_now_sends_failed_deliveries_again_and_leaves_the_others(
    console, deliveries, manager, request
):
    console.force_login(request.getfixturevalue(manager))
    before = {
        name: CallbackDelivery.objects.filter(pk=row.pk).values().get()
        for name, row in deliveries.items()
    }
    started = timezone.now()

    response = console.post(
        url("ingestion_callbackdelivery_changelist"),
        {
            "action": "retry_now",
            "_selected_action": [
                deliveries["a_failed"].pk,
                deliveries["a_delivered"].pk,
                deliveries["b_failed"].pk,  # another tenant's: not in the list, ignored
            ],
        },
        follow=True,
    )

    assert response.status_code == 200
    retried = CallbackDelivery.objects.get(pk=deliveries["a_failed"].pk)
    assert retried.status == CallbackStatus.PENDING
    assert retried.attempts == 0
    assert retried.next_attempt_at >= started
    assert retried.last_error == LONG_ERROR[:500]  # kept until the next attempt
    for name in ("a_pending", "a_delivered", "b_failed"):
        assert (
            CallbackDelivery.objects.filter(pk=deliveries[name].pk).values().get() == (before[name])
        ), name
    page = response.content.decode()
    assert "1 failed delivery(ies) will be sent again" in page
    assert "1 selected delivery(ies) not retried: only failed ones are." in page
    # Callbacks of A are off: the worker would fail it again, and the page says so.
    assert "Callbacks are turned off for Acme Retail" in page
    # The list now shows no failed row.
    assert 'id="callback-failed-banner"' not in page
    assert LogEntry.objects.filter(
        object_id=str(retried.pk), change_message="Retry requested."
    ).exists()


def test_retry_now_on_a_deliverys_page(console, admin_a, tenant_a, deliveries):
    callback_settings_set(organization=tenant_a.organization, url=PARTNER_URL, enabled=True)
    console.force_login(admin_a)
    failed = deliveries["a_failed"]
    retry_url = url("ingestion_callbackdelivery_retry", failed.pk)

    assert console.get(retry_url).status_code == 405
    response = console.post(retry_url)

    assert response.status_code == 302
    assert response["Location"] == url("ingestion_callbackdelivery_change", failed.pk)
    assert CallbackDelivery.objects.get(pk=failed.pk).status == CallbackStatus.PENDING
    # Once more: it is pending now, so nothing happens.
    again = console.post(retry_url, follow=True)
    assert "Only a failed delivery is retried." in again.content.decode()
    assert CallbackDelivery.objects.get(pk=failed.pk).attempts == 0


@pytest.mark.parametrize("member", ["viewer_a", "editor_a"])
def test_viewers_and_editors_see_deliveries_but_cannot_retry(
    console, tenant_a, deliveries, member, request
):
    console.force_login(request.getfixturevalue(member))
    failed = deliveries["a_failed"]

    listing = console.get(url("ingestion_callbackdelivery_changelist"))
    assert listing.status_code == 200
    assert {row.request_id for row in listing.context["cl"].result_list} == {
        "a1failed",
        "a2pending",
        "a3delivered",
    }
    assert "retry_now" not in listing.content.decode()
    detail = console.get(url("ingestion_callbackdelivery_change", failed.pk))
    assert detail.status_code == 200
    assert 'id="retry-callback"' not in detail.content.decode()

    console.post(
        url("ingestion_callbackdelivery_changelist"),
        {"action": "retry_now", "_selected_action": [failed.pk]},
    )
    assert console.post(url("ingestion_callbackdelivery_retry", failed.pk)).status_code == 403
    row = CallbackDelivery.objects.get(pk=failed.pk)
    assert (row.status, row.attempts) == (CallbackStatus.FAILED, 10)


def test_the_organization_page_links_to_its_failed_deliveries(
    console, admin_a, tenant_a, deliveries
):
    console.force_login(admin_a)

    page = _org_page(console, tenant_a).content.decode()

    failed_link = (
        url("ingestion_callbackdelivery_changelist")
        + f"?organization__id__exact={tenant_a.organization.pk}&amp;status__exact=failed"
    )
    assert f'href="{failed_link}"' in page and ">1 failed</a>" in page
    listed = console.get(failed_link.replace("&amp;", "&")).context["cl"].result_list
    assert [row.request_id for row in listed] == ["a1failed"]


def test_a_superuser_sees_every_organizations_deliveries_and_may_retry(
    console, superuser, deliveries
):
    console.force_login(superuser)

    listing = console.get(url("ingestion_callbackdelivery_changelist"))
    console.post(
        url("ingestion_callbackdelivery_changelist"),
        {"action": "retry_now", "_selected_action": [deliveries["b_failed"].pk]},
    )

    assert {row.request_id for row in listing.context["cl"].result_list} == {
        "a1failed",
        "a2pending",
        "a3delivered",
        "b1failed",
    }
    assert CallbackDelivery.objects.get(pk=deliveries["b_failed"].pk).status == (
        CallbackStatus.PENDING
    )
