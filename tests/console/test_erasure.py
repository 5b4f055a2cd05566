"""Erasure requests in the Console (Setup › Erasure requests): owners and admins erase a
person with a form; the list and each page show when, who, what kinds of identifier and
the counts, never an identifier; an owner lifts a suppression; another organization's
requests are out of sight; editors and viewers cannot erase."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry

from cdp.models import EntityRecord, ErasureRequest
from cdp.suppression import suppressed_digests
from ingestion.erasure import ErasureOrder, erasure_run
from tests.console.conftest import url
from tests.ingestion.conftest import ingest_for

EMAIL = "ana.nguyen@example.com"


def _records(tenant, *keys):
    api = ingest_for(tenant)
    body = api.post([api.entry(key, email=EMAIL) for key in keys]).json()
    assert body["created"] == len(keys), body
    return api


def _erase_form(console, tenant, **fields):
    data = {"organization": tenant.organization.pk, "email": EMAIL, **fields}
    return console.post(url("cdp_erasurerequest_add"), data, follow=True)


def test_an_admin_erases_a_person_and_sees_the_counts_not_the_identifier(
    console, admin_a, tenant_a, tenant_b
):
    _records(tenant_a, "R-1", "R-2")
    _records(tenant_b, "R-1")
    console.force_login(admin_a)

    response = _erase_form(console, tenant_a, suppress="on")

    assert response.status_code == 200
    erasure = ErasureRequest.objects.get(organization=tenant_a.organization)
    page = response.content.decode()
    assert f"Erased 2 records, 0 history entries and 0 events (erasure {erasure.erasure_id})" in (
        page
    )
    assert EMAIL not in page
    assert erasure.requested_by == admin_a.username
    assert erasure.suppress and erasure.identifiers == ["email"]
    assert not EntityRecord.objects.filter(organization=tenant_a.organization).exists()
    assert EntityRecord.objects.filter(organization=tenant_b.organization).count() == 1
    # The admin log names the request, not the person.
    entry = LogEntry.objects.get(object_id=str(erasure.pk))
    assert entry.object_repr == erasure.erasure_id
    assert EMAIL not in entry.change_message

    listing = console.get(url("cdp_erasurerequest_changelist")).content.decode()
    assert erasure.erasure_id in listing and admin_a.username in listing
    assert "Suppressing" in listing and EMAIL not in listing


def test_the_form_needs_an_identifier(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = _erase_form(console, tenant_a, email="")

    assert response.status_code == 200
    assert "Give at least one of customerId, email and phone" in response.content.decode()
    assert not ErasureRequest.objects.exists()

    blank = _erase_form(console, tenant_a, email="  ")
    assert "Invalid value of: email" in blank.content.decode()
    assert not ErasureRequest.objects.exists()


def test_another_organizations_requests_are_out_of_sight(console, admin_a, tenant_a, tenant_b):
    theirs = erasure_run(
        organization=tenant_b.organization,
        order=ErasureOrder({"email": EMAIL}),
        requested_by="b@acme.test",
    )
    console.force_login(admin_a)

    listing = console.get(url("cdp_erasurerequest_changelist")).content.decode()
    assert theirs.erasure_id not in listing
    assert console.get(url("cdp_erasurerequest_change", theirs.pk)).status_code == 404
    # Nor can A's admin erase inside B: B is no choice of the form.
    response = _erase_form(console, tenant_b)
    assert "Select a valid choice" in response.content.decode()
    assert ErasureRequest.objects.filter(organization=tenant_b.organization).count() == 1


@pytest.mark.parametrize("member", ["editor_a", "viewer_a"])
def test_editors_and_viewers_cannot_erase(console, request, tenant_a, member):
    _records(tenant_a, "R-1")
    console.force_login(request.getfixturevalue(member))

    assert console.get(url("cdp_erasurerequest_add")).status_code == 403
    assert console.post(url("cdp_erasurerequest_add"), {"email": EMAIL}).status_code == 403
    assert EntityRecord.objects.filter(organization=tenant_a.organization).count() == 1
    # They may read the list.
    assert console.get(url("cdp_erasurerequest_changelist")).status_code == 200


def _lift(console, erasure):
    return console.post(
        url("cdp_erasurerequest_changelist"),
        {"action": "lift_suppression", "_selected_action": [erasure.pk]},
        follow=True,
    )


def test_an_owner_lifts_a_suppression_and_an_admin_cannot(console, admin_a, owner_a, tenant_a):
    erasure = erasure_run(
        organization=tenant_a.organization,
        order=ErasureOrder({"email": EMAIL}, suppress=True),
        requested_by="ops",
    )
    assert suppressed_digests(tenant_a.organization.pk)

    console.force_login(admin_a)
    page = console.get(url("cdp_erasurerequest_changelist")).content.decode()
    assert "lift_suppression" not in page  # not offered
    _lift(console, erasure)
    erasure.refresh_from_db()
    assert erasure.suppression_lifted_at is None

    console.force_login(owner_a)
    response = _lift(console, erasure)
    assert "Lifted 1 suppression(s)." in response.content.decode()
    erasure.refresh_from_db()
    assert erasure.suppression_lifted_by == owner_a.username and erasure.digests == []
    assert suppressed_digests(tenant_a.organization.pk) == frozenset()
    detail = console.get(url("cdp_erasurerequest_change", erasure.pk)).content.decode()
    assert f"by {owner_a.username}" in detail
