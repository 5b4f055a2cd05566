"""API keys in the Console: created through api_key_create, post/redirect/get, the raw
key shown on the first GET after the create and never again (a reload creates nothing and
shows the key without it); names unique among a member's live keys; revoked through
api_key_revoke after a confirmation page, one key or the list's selection."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from cdp import keys, services
from cdp.admin import api_keys as api_keys_admin
from cdp.models import ApiKey, AuthToken
from tests.console.conftest import console_member, url


def _create(console, tenant, name="crm-sync", membership=None):
    return console.post(
        url("cdp_apikey_add"),
        {
            "organization": tenant.organization.pk,
            "membership": (membership or tenant.membership).pk,
            "name": name,
        },
    )


def _created(console, tenant, name="crm-sync", membership=None):
    """Create a key through the form; (the key, the URL the POST redirected to)."""
    response = _create(console, tenant, name=name, membership=membership)
    assert response.status_code == 302, response.content
    api_key = ApiKey.objects.get(
        organization=tenant.organization,
        membership=membership or tenant.membership,
        name=name,
        revoked_at=None,
    )
    return api_key, response["Location"]


def test_the_create_form_preselects_the_organization_and_the_members_own_membership(
    console, admin_a, tenant_a
):
    console.force_login(admin_a)

    form = console.get(url("cdp_apikey_add") + f"?organization={tenant_a.organization.pk}").context[
        "form"
    ]

    assert form.initial == {
        "organization": tenant_a.organization.pk,
        "membership": tenant_a.membership.pk,
    }


def test_creating_redirects_to_a_page_that_shows_the_raw_key_once(console, admin_a, tenant_a):
    console.force_login(admin_a)
    rows = ApiKey.objects.count()

    posted = _create(console, tenant_a)

    assert posted.status_code == 302
    api_key = ApiKey.objects.get(organization=tenant_a.organization, name="crm-sync")
    assert ApiKey.objects.count() == rows + 1
    assert api_key.membership == tenant_a.membership and api_key.created_by == admin_a
    created_url = posted["Location"]
    token = created_url.rstrip("/").rsplit("/", 1)[1]
    assert created_url == url("cdp_apikey_created", api_key.pk, token) and len(token) >= 20
    shown = console.get(created_url)
    assert shown.status_code == 200
    assert "no-store" in shown["Cache-Control"]
    raw = shown.context["raw_key"]
    assert keys.API_KEY_RE.match(raw) and raw.startswith(api_key.prefix)
    assert keys.digest_matches(raw, api_key.digest)
    page = shown.content.decode()
    assert f'<code id="api-key-raw" class="copy-source">{raw}</code>' in page
    assert 'data-copy-target="api-key-raw"' in page
    assert "shown this once" in page
    # Taken from the session by that GET: the session store no longer holds it.
    assert api_keys_admin.SHOWN_ONCE_SESSION_KEY not in console.session
    assert raw not in posted.content.decode() and raw not in created_url


def test_reloading_the_created_page_creates_nothing_and_shows_no_raw_key(
    console, admin_a, tenant_a
):
    console.force_login(admin_a)
    posted = _create(console, tenant_a)
    first = console.get(posted["Location"])
    raw = first.context["raw_key"]
    rows = ApiKey.objects.count()

    reloads = [console.get(posted["Location"]) for _ in range(2)]

    assert ApiKey.objects.count() == rows
    assert ApiKey.objects.filter(organization=tenant_a.organization, name="crm-sync").count() == 1
    for reload in reloads:
        assert reload.status_code == 200
        assert "no-store" in reload["Cache-Control"]
        assert reload.context["raw_key"] is None
        page = reload.content.decode()
        assert "was shown once, when it was created" in page
        assert 'id="api-key-raw"' not in page
        assert raw not in page
    responses = [posted, first, *reloads]
    assert sum(raw in response.content.decode() for response in responses) == 1


def test_the_raw_key_is_on_no_later_page(console, admin_a, tenant_a):
    console.force_login(admin_a)
    api_key, created_url = _created(console, tenant_a)
    raw = console.get(created_url).context["raw_key"]

    # Nowhere afterwards: the list, the key's page, the organization, its history.
    for later in (
        url("cdp_apikey_changelist"),
        url("cdp_apikey_change", api_key.pk),
        url("cdp_apikey_history", api_key.pk),
        url("cdp_apikey_revoke", api_key.pk),
        url("cdp_organization_change", tenant_a.organization.pk),
        url("cdp_apikey_add"),
        url("index"),
        created_url,
    ):
        later_page = console.get(later)
        assert later_page.status_code == 200, later
        assert raw not in later_page.content.decode(), later
        assert api_key.digest not in later_page.content.decode(), later
    assert api_key.prefix in console.get(url("cdp_apikey_changelist")).content.decode()


def test_a_raw_key_not_taken_in_time_is_dropped_unshown(console, admin_a, tenant_a, monkeypatch):
    console.force_login(admin_a)
    monkeypatch.setattr(api_keys_admin, "SHOWN_ONCE_SECONDS", 0)
    _api_key, created_url = _created(console, tenant_a)

    page = console.get(created_url)

    assert page.context["raw_key"] is None
    assert "was shown once" in page.content.decode()
    assert api_keys_admin.SHOWN_ONCE_SESSION_KEY not in console.session


def test_the_created_page_is_another_sessions_and_tenants_nothing(
    console, admin_a, admin_b, tenant_a, tenant_b
):
    """The raw key waits in the creator's session: the same URL shows it to nobody else,
    and is 404 for another organization's admin."""
    console.force_login(admin_a)
    api_key, created_url = _created(console, tenant_a)
    colleague = Client()
    colleague.force_login(console_member(tenant_a, "colleague@acme.test", "admin"))
    other_tenant = Client()
    other_tenant.force_login(admin_b)

    assert other_tenant.get(created_url).status_code == 404
    seen_by_colleague = colleague.get(created_url)
    assert seen_by_colleague.status_code == 200
    assert seen_by_colleague.context["raw_key"] is None
    # The creator still gets it, once.
    raw = console.get(created_url).context["raw_key"]
    assert keys.digest_matches(raw, api_key.digest)


def test_a_key_can_be_created_for_another_member_of_the_organization(console, admin_a, tenant_a):
    integration = console_member(tenant_a, "integration@acme.test", "viewer")
    membership = integration.memberships.get()
    console.force_login(admin_a)

    api_key, created_url = _created(console, tenant_a, name="erp", membership=membership)

    raw = console.get(created_url).context["raw_key"]
    assert api_key.membership == membership
    assert keys.digest_matches(raw, api_key.digest)
    # The key works on the Authentication API as that member.
    assert (
        services.api_key_authenticate(
            group_key=tenant_a.group_key, username="integration@acme.test", raw_key=raw
        )
        == api_key
    )


def test_a_member_of_another_organization_cannot_be_given_a_key(
    console, admin_a, tenant_a, tenant_b
):
    console.force_login(admin_a)

    response = console.post(
        url("cdp_apikey_add"),
        {
            "organization": tenant_a.organization.pk,
            "membership": tenant_b.membership.pk,
            "name": "intruder",
        },
    )
    mixed = console.post(
        url("cdp_apikey_add"),
        {
            "organization": tenant_b.organization.pk,
            "membership": tenant_a.membership.pk,
            "name": "intruder",
        },
    )

    assert response.status_code == 200 and "membership" in response.context["form"].errors
    assert mixed.status_code == 200 and "organization" in mixed.context["form"].errors
    assert "raw_key" not in response.context and "raw_key" not in mixed.context
    assert not ApiKey.objects.filter(name="intruder").exists()


def test_a_blank_name_is_refused(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = _create(console, tenant_a, name="")

    assert "name" in response.context["form"].errors
    assert ApiKey.objects.filter(organization=tenant_a.organization).count() == 1


def test_viewers_and_editors_can_neither_create_nor_revoke(console, viewer_a, editor_a, tenant_a):
    for user in (viewer_a, editor_a):
        console.force_login(user)
        rows = ApiKey.objects.count()

        assert console.get(url("cdp_apikey_add")).status_code == 403
        assert _create(console, tenant_a, name="sneaky").status_code == 403
        key_page = console.get(url("cdp_apikey_change", tenant_a.api_key.pk))
        assert key_page.status_code == 200 and key_page.context["revoke_url"] is None
        assert url("cdp_apikey_revoke", tenant_a.api_key.pk) not in key_page.content.decode()
        assert console.get(url("cdp_apikey_revoke", tenant_a.api_key.pk)).status_code == 403
        assert console.post(url("cdp_apikey_revoke", tenant_a.api_key.pk)).status_code == 403
        listing = console.get(url("cdp_apikey_changelist"))
        assert "revoke_selected" not in listing.content.decode()
        confirm = console.post(
            url("cdp_apikey_changelist"),
            {
                "action": "revoke_selected",
                "_selected_action": [tenant_a.api_key.pk],
                "post": "yes",
            },
        )
        assert confirm.status_code in (200, 302)
        assert ApiKey.objects.count() == rows
        assert ApiKey.objects.get(pk=tenant_a.api_key.pk).revoked_at is None


# --- names ----------------------------------------------------------------------------


def test_a_members_second_live_key_of_a_name_is_refused_on_the_name_field(
    console, admin_a, tenant_a
):
    console.force_login(admin_a)

    response = _create(console, tenant_a, name="ingest")  # tenant_a's key is "ingest"

    assert response.status_code == 200
    assert response.context["form"].errors["name"] == [
        "This member already has an API key named “ingest”: choose another name, or revoke "
        "that key first."
    ]
    page = response.content.decode()
    assert "This member already has an API key named “ingest”" in page
    assert "raw_key" not in response.context
    assert ApiKey.objects.filter(organization=tenant_a.organization).count() == 1


def test_a_name_is_unique_per_member_only(console, admin_a, tenant_a, tenant_b):
    colleague = console_member(tenant_a, "colleague@acme.test", "viewer").memberships.get()
    console.force_login(admin_a)

    _created(console, tenant_a, name="ingest", membership=colleague)

    assert ApiKey.objects.filter(organization=tenant_a.organization, name="ingest").count() == 2
    assert ApiKey.objects.filter(organization=tenant_b.organization, name="ingest").count() == 1


def test_a_revoked_keys_name_may_be_given_again(console, admin_a, tenant_a):
    services.api_key_revoke(organization=tenant_a.organization, api_key_id=tenant_a.api_key.pk)
    console.force_login(admin_a)

    api_key, _created_url = _created(console, tenant_a, name="ingest")

    assert api_key.pk != tenant_a.api_key.pk
    names = ApiKey.objects.filter(membership=tenant_a.membership).values_list("name", "revoked_at")
    assert sorted(name for name, _revoked in names) == ["ingest", "ingest"]
    with pytest.raises(ValidationError) as raised:
        services.api_key_create(membership=tenant_a.membership, name="ingest")
    assert list(raised.value.message_dict) == ["name"]


def test_the_service_refuses_the_name_even_when_a_concurrent_create_won_the_race(
    tenant_a, monkeypatch
):
    """The check before the insert saw no such key (another request's insert came after
    it): the database's constraint refuses the insert, and the error is the same."""
    from cdp.services import api_keys as api_key_services

    real = api_key_services._live_name_taken
    checks = []

    def stale_then_real(**kwargs):
        checks.append(kwargs)
        return False if len(checks) == 1 else real(**kwargs)

    monkeypatch.setattr(api_key_services, "_live_name_taken", stale_then_real)

    with pytest.raises(ValidationError) as raised:
        services.api_key_create(membership=tenant_a.membership, name="ingest")

    assert raised.value.message_dict["name"][0].startswith(
        "This member already has an API key named “ingest”"
    )
    assert len(checks) == 2  # before the insert, and after the database refused it
    assert ApiKey.objects.filter(organization=tenant_a.organization).count() == 1


def test_the_database_refuses_a_second_live_key_of_a_members_name(tenant_a):
    def insert(revoked_at=None):
        return ApiKey.objects.create(
            organization=tenant_a.organization,
            membership=tenant_a.membership,
            name="ingest",
            prefix="f" * 8,
            digest=keys.digest("f" * 40),
            revoked_at=revoked_at,
        )

    with pytest.raises(IntegrityError), transaction.atomic():
        insert()
    revoked = insert(revoked_at=tenant_a.api_key.created_at)  # a revoked one may share it

    assert revoked.pk and ApiKey.objects.filter(name="ingest").count() == 2


BEFORE_UNIQUE_NAMES = [("cdp", "0008_erasure")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_renames_a_members_live_keys_that_share_a_name():
    """A database of before the constraint may hold a member's live keys of one name: the
    oldest keeps it, the others become "name (2)", "name (3)"…, and all keep working.
    Revoked keys and other members' keys keep their names."""
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(BEFORE_UNIQUE_NAMES)
    try:
        executor.loader.build_graph()
        apps = executor.loader.project_state(BEFORE_UNIQUE_NAMES).apps
        organization = apps.get_model("cdp", "Organization").objects.create(
            name="A", group_key="GKA"
        )
        made = {}
        for username in ("one@x.test", "two@x.test"):
            user = apps.get_model("auth", "User").objects.create(username=username)
            membership = apps.get_model("cdp", "Membership").objects.create(
                organization=organization, user=user, role="admin"
            )
            for index, (name, revoked) in enumerate(
                [("crm", False), ("crm", False), ("crm", True), ("crm (2)", False), ("crm", False)]
            ):
                label = f"{username}-{index}"
                made[label] = (
                    apps.get_model("cdp", "ApiKey")
                    .objects.create(
                        organization=organization,
                        membership=membership,
                        name=name,
                        prefix=f"{len(made):08x}",
                        digest=keys.digest(label),
                        revoked_at=organization.created_at if revoked else None,
                    )
                    .pk
                )

        MigrationExecutor(connection).migrate(latest)

        for username in ("one@x.test", "two@x.test"):
            names = [ApiKey.objects.get(pk=made[f"{username}-{index}"]).name for index in range(5)]
            assert names == ["crm", "crm (3)", "crm", "crm (2)", "crm (4)"], username
        assert ApiKey.objects.filter(revoked_at=None).count() == 8
    finally:
        MigrationExecutor(connection).migrate(latest)


# --- revoking -------------------------------------------------------------------------


def test_the_revoke_page_asks_first_and_revokes_on_confirm(console, admin_a, tenant_a):
    services.token_issue(api_key=tenant_a.api_key)
    console.force_login(admin_a)
    api_key = tenant_a.api_key
    key_page = console.get(url("cdp_apikey_change", api_key.pk))
    revoke_url = url("cdp_apikey_revoke", api_key.pk)
    assert key_page.context["revoke_url"] == revoke_url
    assert f'href="{revoke_url}"' in key_page.content.decode()

    asked = console.get(revoke_url)

    assert asked.status_code == 200
    page = asked.content.decode()
    assert (
        f"Revoke key <strong>ingest</strong> (<code>{api_key.prefix}…</code>)? Its tokens stop "
        "working at once." in page
    )
    assert 'id="revoke-confirm"' in page and 'id="revoke-cancel"' in page
    assert f'href="{url("cdp_apikey_change", api_key.pk)}"' in page  # Cancel: back to the key
    assert 'name="csrfmiddlewaretoken"' in page
    api_key.refresh_from_db()
    assert api_key.revoked_at is None and AuthToken.objects.filter(api_key=api_key).exists()

    confirmed = console.post(revoke_url, follow=True)

    assert confirmed.redirect_chain == [(url("cdp_apikey_changelist"), 302)]
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert not AuthToken.objects.filter(api_key=api_key).exists()
    assert f"Revoked API key “ingest ({api_key.prefix}…)”" in confirmed.content.decode()
    # A revoked key's page offers no revoking; its revoke page says it is done.
    assert console.get(url("cdp_apikey_change", api_key.pk)).context["revoke_url"] is None
    again = console.get(revoke_url).content.decode()
    assert 'id="revoke-already"' in again and 'id="revoke-confirm"' not in again


def test_revoking_needs_the_csrf_token(admin_a, tenant_a):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_a)
    revoke_url = url("cdp_apikey_revoke", tenant_a.api_key.pk)

    refused = browser.post(revoke_url)

    assert refused.status_code == 403
    assert ApiKey.objects.get(pk=tenant_a.api_key.pk).revoked_at is None
    browser.get(revoke_url)  # the confirmation page sets the token, as for a person
    token = browser.cookies["csrftoken"].value
    assert browser.post(revoke_url, {"csrfmiddlewaretoken": token}).status_code == 302
    assert ApiKey.objects.get(pk=tenant_a.api_key.pk).revoked_at is not None


def test_another_organizations_key_is_404_on_every_key_page(console, admin_b, tenant_a, tenant_b):
    console.force_login(admin_b)
    api_key = tenant_a.api_key

    for page in ("cdp_apikey_change", "cdp_apikey_revoke", "cdp_apikey_history"):
        assert console.get(url(page, api_key.pk)).status_code == 404, page
    assert console.post(url("cdp_apikey_revoke", api_key.pk)).status_code == 404
    assert console.get(url("cdp_apikey_created", api_key.pk, "token")).status_code == 404
    listing = console.get(url("cdp_apikey_changelist"))
    assert list(listing.context["cl"].result_list) == [tenant_b.api_key]
    assert api_key.prefix not in listing.content.decode()
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is None


def test_the_list_action_asks_first_then_revokes(console, admin_a, tenant_a, tenant_b):
    services.token_issue(api_key=tenant_a.api_key)
    second, _raw = services.api_key_create(membership=tenant_a.membership, name="erp")
    console.force_login(admin_a)
    selected = [tenant_a.api_key.pk, second.pk, tenant_b.api_key.pk]

    asked = console.post(
        url("cdp_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": selected},
    )

    assert asked.status_code == 200
    page = asked.content.decode()
    assert "Revoke 2 API keys? Their tokens stop working at once." in page
    assert tenant_a.api_key.prefix in page and second.prefix in page
    assert tenant_b.api_key.prefix not in page  # not in A's list, so not selectable
    assert {k.pk for k in asked.context["api_keys"]} == {tenant_a.api_key.pk, second.pk}
    assert 'name="post" value="yes"' in page
    assert ApiKey.objects.filter(organization=tenant_a.organization, revoked_at=None).count() == 2

    confirmed = console.post(
        url("cdp_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": asked.context["selected"], "post": "yes"},
        follow=True,
    )

    assert "Revoked 2 API key(s)" in confirmed.content.decode()
    assert ApiKey.objects.filter(organization=tenant_a.organization, revoked_at=None).count() == 0
    assert not AuthToken.objects.filter(api_key=tenant_a.api_key).exists()
    assert ApiKey.objects.get(pk=tenant_b.api_key.pk).revoked_at is None
    listing = console.get(url("cdp_apikey_changelist") + "?status=revoked")
    assert set(listing.context["cl"].result_list) == {tenant_a.api_key, second}


def test_the_list_action_revokes_only_where_the_member_manages_keys(console, tenant_a, tenant_b):
    """A member who is admin in A and viewer in B sees both organizations' keys; the
    confirmation names only A's, and says the other is left."""
    user = console_member(tenant_a, "both@acme.test", "admin")
    services.member_add(organization=tenant_b.organization, user=user, role="viewer")
    console.force_login(user)
    selected = [tenant_a.api_key.pk, tenant_b.api_key.pk]

    asked = console.post(
        url("cdp_apikey_changelist"), {"action": "revoke_selected", "_selected_action": selected}
    )
    assert [k.pk for k in asked.context["api_keys"]] == [tenant_a.api_key.pk]
    assert "1 other selected key will not be revoked" in asked.content.decode()
    confirmed = console.post(
        url("cdp_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": selected, "post": "yes"},
        follow=True,
    )

    page = confirmed.content.decode()
    assert "Revoked 1 API key(s)" in page and "1 key(s) not revoked" in page
    assert ApiKey.objects.get(pk=tenant_a.api_key.pk).revoked_at is not None
    assert ApiKey.objects.get(pk=tenant_b.api_key.pk).revoked_at is None
    # Only B's key selected: nothing to confirm, the list says why.
    only_b = console.post(
        url("cdp_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [tenant_b.api_key.pk]},
        follow=True,
    )
    assert "None of the selected API keys can be revoked" in only_b.content.decode()
    assert ApiKey.objects.get(pk=tenant_b.api_key.pk).revoked_at is None


def test_a_key_page_is_read_only(console, admin_a, tenant_a):
    console.force_login(admin_a)

    page = console.get(url("cdp_apikey_change", tenant_a.api_key.pk))

    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert tenant_a.api_key.prefix in page.content.decode()
    response = console.post(url("cdp_apikey_change", tenant_a.api_key.pk), {"name": "renamed"})
    assert response.status_code == 403
    assert ApiKey.objects.get(pk=tenant_a.api_key.pk).name == "ingest"
