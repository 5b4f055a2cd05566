"""Console fixtures: members of each role in organization A (tenant_a), B's admin, a
superuser, a Django test client, and a helper that turns a rendered admin form back into
the POST data a browser would send."""

from __future__ import annotations

from typing import Any

import pytest
from django import forms
from django.contrib.auth import get_user_model
from django.test import Client

from cdp import services
from cdp.console import console_site
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.conftest import Tenant

PASSWORD = "s3cret-pass-word"


def console_member(tenant: Tenant, username: str, role: str) -> Any:
    user = services.user_create(username=username, password=PASSWORD)
    services.member_add(organization=tenant.organization, user=user, role=role)
    services.console_access_grant(user=user)
    return user


@pytest.fixture
def console() -> Client:
    return Client()


@pytest.fixture
def admin_a(tenant_a: Tenant) -> Any:
    """tenant_a's own user: role admin, with the API key `tenant_a.raw_key`."""
    return services.console_access_grant(user=tenant_a.user)


@pytest.fixture
def admin_b(tenant_b: Tenant) -> Any:
    return services.console_access_grant(user=tenant_b.user)


@pytest.fixture
def editor_a(tenant_a: Tenant) -> Any:
    return console_member(tenant_a, "editor@acme.test", "editor")


@pytest.fixture
def viewer_a(tenant_a: Tenant) -> Any:
    return console_member(tenant_a, "viewer@acme.test", "viewer")


@pytest.fixture
def owner_a(tenant_a: Tenant) -> Any:
    return console_member(tenant_a, "owner@acme.test", "owner")


@pytest.fixture
def superuser(db: Any) -> Any:
    return get_user_model().objects.create_superuser(
        username="root@cdp.test", email="root@cdp.test", password=PASSWORD
    )


def user_event_create(tenant: Tenant, **settings: Any):
    """A User Event on the tenant's model; `settings` are UserEventSettings' (and
    `trigger`)."""
    return journey_event_config_create(
        organization=tenant.organization,
        data_model=tenant.model,
        trigger=settings.pop("trigger", "Created"),
        settings=UserEventSettings(
            **{"event_name": "membership_created", "category": "UserIdentity", **settings}
        ),
    )


def url(name: str, *args: Any) -> str:
    from django.urls import reverse

    return reverse(f"{console_site.name}:{name}", args=args)


def _form_values(form: forms.BaseForm, data: dict[str, Any]) -> None:
    for bound in form:
        if bound.field.disabled:
            continue
        value = bound.value()
        if isinstance(bound.field.widget, forms.CheckboxInput):
            if value:
                data[bound.html_name] = "on"
            continue
        if value is None:
            continue
        if isinstance(value, list | tuple):
            data[bound.html_name] = [str(v) for v in value]
        else:
            data[bound.html_name] = str(value)


def form_data(response: Any) -> dict[str, Any]:
    """The POST data of a rendered admin add/change page, as a browser would send it
    unchanged: the main form and every inline formset with its management form."""
    data: dict[str, Any] = {}
    _form_values(response.context["adminform"].form, data)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        _form_values(formset.management_form, data)
        for form in formset.forms:
            _form_values(form, data)
    return data
