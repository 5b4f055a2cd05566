"""The `users` section: members of the organization, matched by username, and their API
keys, matched by name within the membership. Provisioning never revokes or replaces a
key, and never resets an existing user's password (docs/decisions.md)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator

from cdp import keys, services
from cdp.models import ApiKey, Membership, Organization, Role
from cdp.provisioning.errors import invalid, path_join, refusing
from cdp.provisioning.registry import section_register
from cdp.provisioning.results import ApiKeyOutcome, Status, UserOutcome
from cdp.provisioning.serializers import (
    Choice,
    ItemList,
    Pattern,
    Problems,
    StrictSerializer,
    Text,
)


class ApiKeySerializer(StrictSerializer):
    name = Text(max_length=100)
    key = Pattern(
        pattern=keys.API_KEY_RE,
        shape="an API key is 40 lowercase hexadecimal characters",
        required=False,
    )


class UserSerializer(StrictSerializer):
    username = Text(max_length=150)
    password = Text(required=False, max_length=128)
    role = Choice(Role.values)
    apiKeys = ApiKeySerializer(many=True, required=False)

    def validate_username(self, username: str) -> str:
        UnicodeUsernameValidator(message="a username holds only letters, digits and @ . + - _")(
            username
        )
        return username


class UsersSerializer(ItemList):
    """Usernames, and API key names within a user, appear once; two keys of one
    organization may not share a prefix, across the whole file."""

    child = UserSerializer()

    def validate(self, users: list[dict[str, Any]]) -> list[dict[str, Any]]:
        problems = Problems(self)
        username_once = problems.once("username")
        prefixes: dict[str, str] = {}
        for i, user in enumerate(users):
            username_once(user["username"], (i, "username"))
            name_once = problems.once("API key name")
            for j, api_key in enumerate(user.get("apiKeys", [])):
                name_once(api_key["name"], (i, "apiKeys", j, "name"))
                if "key" not in api_key:
                    continue
                prefix = keys.api_key_prefix(api_key["key"])
                if prefix in prefixes:
                    problems.add(
                        (i, "apiKeys", j, "key"),
                        f"starts with the same {keys.API_KEY_PREFIX_LENGTH} characters as "
                        f"{prefixes[prefix]}: keys of one organization need distinct prefixes",
                    )
                else:
                    prefixes[prefix] = problems.path_of((i, "apiKeys", j, "key"))
        problems.raise_any()
        return users


def users_apply(
    *, organization: Organization, items: list[dict[str, Any]], path: str
) -> list[UserOutcome]:
    return [
        _user_apply(organization=organization, spec=spec, path=path_join(path, index))
        for index, spec in enumerate(items)
    ]


def _user_apply(*, organization: Organization, spec: dict[str, Any], path: str) -> UserOutcome:
    """A new user gets the file's password; an existing user's password is left alone
    (users are shared by organizations, and one tenant's file must not reset it)."""
    username: str = spec["username"]
    role: str = spec["role"]
    user = get_user_model().objects.filter(username=username).first()
    status: Status = "unchanged"
    if user is None:
        user = refusing(
            path, services.user_create, username=username, password=spec.get("password")
        )
        status = "created"
    membership = Membership.objects.filter(organization=organization, user=user).first()
    if membership is None or membership.role != role:
        membership = services.member_add(organization=organization, user=user, role=role)
        status = "created" if status == "created" else "updated"
    # Every member may sign in to the Console, which scopes what they see by membership.
    services.console_access_grant(user=user)
    api_keys = [
        _api_key_apply(membership=membership, spec=key_spec, path=f"{path}.apiKeys[{index}]")
        for index, key_spec in enumerate(spec.get("apiKeys", []))
    ]
    return UserOutcome(username=username, role=role, status=status, api_keys=api_keys)


def _api_key_apply(*, membership: Membership, spec: dict[str, Any], path: str) -> ApiKeyOutcome:
    """Match by name among the membership's unrevoked keys. A key the file gives must be
    the stored one: provisioning never replaces or revokes a key (docs/decisions.md)."""
    name: str = spec["name"]
    raw: str | None = spec.get("key")
    given = raw is not None
    stored = list(
        ApiKey.objects.filter(
            organization=membership.organization, membership=membership, name=name
        ).order_by("pk")
    )
    live = [k for k in stored if k.revoked_at is None]
    if raw is not None:
        if any(keys.digest_matches(raw, k.digest) for k in live):
            return ApiKeyOutcome(name=name, status="unchanged", key=raw, given=True)
        if live:
            raise invalid(
                f"{path}.key",
                f"{membership.user.get_username()} already has a key named {name!r} with "
                f"another value ({live[0].prefix}…): provisioning never replaces a key; "
                "revoke it in the Console first, or remove `key` from the file",
            )
        if any(keys.digest_matches(raw, k.digest) for k in stored):
            raise invalid(f"{path}.key", "this key was revoked: give another value")
    elif live:
        return ApiKeyOutcome(name=name, status="unchanged", key=None, given=False)
    _api_key, raw_value = refusing(
        path, services.api_key_create, membership=membership, name=name, raw_key=raw
    )
    return ApiKeyOutcome(name=name, status="created", key=raw_value, given=given)


section_register(key="users", position=10, validator=UsersSerializer, apply=users_apply)
