"""The `organization` section: the tenant itself, matched by `groupKey` when the file
gives one, else by name, and its callback settings.

The callback is judged in two steps: its shape and URL text here, the URL's addresses
(the SSRF guard, which needs DNS) by the service when applied.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from cdp import callback_settings, identifiers, services
from cdp.models import Organization
from cdp.provisioning.errors import invalid, refusing
from cdp.provisioning.registry import section_register
from cdp.provisioning.results import OrganizationOutcome, Status
from cdp.provisioning.serializers import Boolean, Pattern, StrictSerializer, Text

ORGANIZATION = "organization"


class CallbackSerializer(StrictSerializer):
    """Both keys optional (absent keeps the stored value); `url` may be blank to remove it.
    Whether the URL's host is public is judged when applying."""

    url = Text(
        required=False, allow_blank=True, max_length=callback_settings.CALLBACK_URL_MAX_LENGTH
    )
    enabled = Boolean(required=False)

    def validate_url(self, url: str) -> str:
        if url and (problem := callback_settings.callback_url_syntax_error(url.strip())):
            raise serializers.ValidationError(problem)
        return url

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        if spec.get("enabled") is True and "url" in spec and not spec["url"].strip():
            raise serializers.ValidationError({"enabled": "callbacks need a url to be enabled"})
        return spec


class OrganizationSerializer(StrictSerializer):
    name = Text(max_length=200)
    groupKey = Pattern(
        pattern=identifiers.GROUP_KEY_RE,
        shape="a group key is 32 lowercase hexadecimal characters",
        required=False,
    )
    callback = CallbackSerializer(required=False)


def organization_apply(*, spec: dict[str, Any]) -> tuple[Organization, OrganizationOutcome]:
    name: str = spec["name"]
    group_key: str | None = spec.get("groupKey")
    organization = _organization_find(name=name, group_key=group_key)
    if organization is None:
        organization = services.organization_create(name=name, group_key=group_key)
        status: Status = "created"
    else:
        status = "unchanged"
        if services.system_models_ensure(organization=organization):
            status = "updated"
        if organization.name != name:
            services.organization_rename(organization=organization, name=name)
            status = "updated"
    secret = None
    if "callback" in spec:
        changed, secret = _callback_apply(organization=organization, spec=spec["callback"])
        if changed and status == "unchanged":
            status = "updated"
    outcome = OrganizationOutcome(
        name=name, group_key=organization.group_key, status=status, callback_secret=secret
    )
    return organization, outcome


def _callback_apply(*, organization: Organization, spec: dict[str, Any]) -> tuple[bool, str | None]:
    """Set the callback through its service; returns whether anything changed and the
    secret, when this run generated one."""
    url = spec["url"].strip() if "url" in spec else organization.callback_url
    enabled = spec.get("enabled", organization.callback_enabled)
    before = (organization.callback_url, organization.callback_enabled)
    secret = refusing(
        f"{ORGANIZATION}.callback",
        callback_settings.callback_settings_set,
        organization=organization,
        url=url,
        enabled=enabled,
    )
    return before != (url, enabled) or secret is not None, secret


def _organization_find(*, name: str, group_key: str | None) -> Organization | None:
    """By group key when the file gives one (the tenant's identity), else by name."""
    if group_key is not None:
        return Organization.objects.filter(group_key=group_key).first()
    matches = list(Organization.objects.filter(name=name).order_by("pk")[:2])
    if len(matches) > 1:
        raise invalid(
            f"{ORGANIZATION}.name",
            f"several organizations are named {name!r}: give groupKey to say which one",
        )
    return matches[0] if matches else None


section_register(
    key=ORGANIZATION,
    position=0,
    validator=OrganizationSerializer,
    apply=organization_apply,
    required=True,
)
