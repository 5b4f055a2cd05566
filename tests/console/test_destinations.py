"""Destinations in the Console: created with the secret shown once, edited, turned off
and on; the deliveries with status, attempts and last error; "Replay" of one or all
failed; another organization's destinations out of sight; viewers cannot write."""

from __future__ import annotations

import pytest

from ingestion.destinations import destination_create
from ingestion.models import CallbackStatus, Destination, DestinationDelivery
from tests.console.conftest import url


@pytest.fixture(autouse=True)
def _private_urls(settings):
    settings.CDP_CALLBACK_ALLOW_PRIVATE = True


def _add(console, tenant, **fields):
    data = {
        "organization": tenant.organization.pk,
        "name": "Journeys",
        "url": "http://127.0.0.1:9/hooks",
        "enabled": "on",
        "events_text": "purchase, refund",
        **fields,
    }
    return console.post(url("ingestion_destination_add"), data)


def _failed_delivery(destination, webhook_id="msg_1"):
    from django.utils import timezone

    return DestinationDelivery.objects.create(
        organization=destination.organization,
        destination=destination,
        webhook_id=webhook_id,
        request_id="r" * 32,
        event_ids=["E-1"],
        status=CallbackStatus.FAILED,
        attempts=10,
        last_status_code=503,
        last_error="HTTP 503: partner is down",
        next_attempt_at=timezone.now(),
        created_at=timezone.now(),
    )


def test_a_destination_is_created_with_its_secret_shown_once(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = _add(console, tenant_a)

    assert response.status_code == 200, response.content[:500]
    assert "no-store" in response["Cache-Control"]
    destination = Destination.objects.get(organization=tenant_a.organization, name="Journeys")
    page = response.content.decode()
    assert f'<code id="destination-secret" class="copy-source">{destination.secret}</code>' in page
    assert destination.secret.startswith("whsec_")
    assert destination.events == ["purchase", "refund"] and destination.enabled
    for later in (
        url("ingestion_destination_changelist"),
        url("ingestion_destination_change", destination.pk),
    ):
        assert destination.secret not in console.get(later).content.decode()


def test_bad_settings_are_refused_on_the_form(console, admin_a, tenant_a, settings):
    settings.CDP_CALLBACK_ALLOW_PRIVATE = False
    console.force_login(admin_a)

    response = _add(console, tenant_a, url="http://10.0.0.5/hooks")

    assert response.status_code == 200
    assert "url" in response.context["adminform"].form.errors
    assert not Destination.objects.exists()


def test_edit_turns_it_off_and_changes_its_events(console, admin_a, tenant_a):
    destination, secret = destination_create(
        organization=tenant_a.organization, name="J", url="http://127.0.0.1:9/a"
    )
    console.force_login(admin_a)

    response = console.post(
        url("ingestion_destination_change", destination.pk),
        {"url": "http://127.0.0.1:9/b", "events_text": "purchase"},
    )

    assert response.status_code == 302, response.content[:800]
    destination.refresh_from_db()
    assert (destination.url, destination.events, destination.enabled) == (
        "http://127.0.0.1:9/b",
        ["purchase"],
        False,
    )
    assert destination.secret == secret


def test_deliveries_list_status_attempts_and_last_error_and_replay_them(console, admin_a, tenant_a):
    destination, _ = destination_create(
        organization=tenant_a.organization, name="J", url="http://127.0.0.1:9/a"
    )
    first, second = _failed_delivery(destination, "msg_1"), _failed_delivery(destination, "msg_2")
    console.force_login(admin_a)

    page = console.get(url("ingestion_destinationdelivery_changelist")).content.decode()
    assert "msg_1" in page and "HTTP 503: partner is down" in page and "Failed" in page
    listed = console.get(url("ingestion_destination_changelist")).content.decode()
    assert "status__exact=failed" in listed  # the failed count links to them

    console.post(
        url("ingestion_destinationdelivery_changelist"),
        {"action": "replay_selected", "_selected_action": [first.pk]},
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.attempts, second.status) == ("pending", 0, "failed")

    console.post(
        url("ingestion_destination_changelist"),
        {"action": "replay_failed", "_selected_action": [destination.pk]},
    )
    second.refresh_from_db()
    assert (second.status, second.webhook_id) == ("pending", "msg_2")


def test_another_organization_s_destinations_are_out_of_sight(console, admin_b, tenant_a):
    destination, _ = destination_create(
        organization=tenant_a.organization, name="A-only", url="http://127.0.0.1:9/a"
    )
    _failed_delivery(destination)
    console.force_login(admin_b)

    assert "A-only" not in console.get(url("ingestion_destination_changelist")).content.decode()
    assert console.get(url("ingestion_destination_change", destination.pk)).status_code == 404
    assert (
        "msg_1" not in console.get(url("ingestion_destinationdelivery_changelist")).content.decode()
    )


def test_a_viewer_sees_destinations_but_cannot_add_or_replay(console, viewer_a, tenant_a):
    destination, _ = destination_create(
        organization=tenant_a.organization, name="J", url="http://127.0.0.1:9/a"
    )
    delivery = _failed_delivery(destination)
    console.force_login(viewer_a)

    listed = console.get(url("ingestion_destination_changelist"))
    assert listed.status_code == 200 and "http://127.0.0.1:9/a" in listed.content.decode()
    assert _add(console, tenant_a, name="Other").status_code == 403
    console.post(
        url("ingestion_destinationdelivery_changelist"),
        {"action": "replay_selected", "_selected_action": [delivery.pk]},
    )
    delivery.refresh_from_db()
    assert delivery.status == "failed"
