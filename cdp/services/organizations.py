"""Writes for organizations, the tenants: creating one with its system models, renaming
it."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from cdp import identifiers
from cdp.models import Organization
from cdp.services.data_models import system_models_ensure


def organization_create(*, name: str, group_key: str | None = None) -> Organization:
    """Create a tenant with its system models. `group_key` lets provisioning import a
    known cdpGKey (32 lowercase hex); it is drawn at random otherwise."""
    if group_key is not None:
        if not identifiers.GROUP_KEY_RE.match(group_key):
            raise ValidationError(
                {"groupKey": "A group key is 32 lowercase hexadecimal characters."}
            )
        if Organization.objects.filter(group_key=group_key).exists():
            raise ValidationError({"groupKey": "Another organization has this group key."})
    with transaction.atomic():
        organization = Organization.objects.create(
            name=name, group_key=group_key or identifiers.group_key_generate()
        )
        system_models_ensure(organization=organization)
    return organization


def organization_rename(*, organization: Organization, name: str) -> Organization:
    """Rename an organization; its group key, the tenant's identity on the wire, never changes."""
    if not name.strip():
        raise ValidationError({"name": "An organization needs a name."})
    if organization.name != name:
        organization.name = name
        organization.save(update_fields=["name"])
    return organization
