"""Provisioning: create or update one organization from a JSON file.

Two steps. `provisioning_validate` judges the whole document without touching the
database and returns every error, each naming the JSON path of the bad value
(`users[0].apiKeys[1].key`). `provisioning_apply` then writes everything through the
services in one transaction; the few values only the database can judge (a momCode
another model holds, a key that clashes with a stored one) raise `ProvisioningInvalid`
there, which rolls the whole run back.

Each top-level section has one validator and one apply step, called in file order. The
organization's `callback` is judged in two steps too: its shape and URL text here, the
URL's addresses (the SSRF guard, which needs DNS) by the service when applied. User Events
are judged in two steps: their shape here, their filters, update values and event time
against the model's schema while applying (the schema may come from the same file).

Matching, so that a second run changes nothing: the organization by `groupKey` when the
file gives one, else by name; users by username; API keys by name within the membership;
custom models by name, system models by `objectType`; fields by name. Provisioning never
deletes, revokes or replaces anything, and a value absent from the file keeps the stored
one (docs/decisions.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import transaction

from cdp import callback_settings, identifiers, keys, services
from cdp.models import (
    ApiKey,
    DataModel,
    FieldDefinition,
    Membership,
    ModelKind,
    Organization,
    Role,
)
from cdp.schema import (
    CUSTOM_FIELD_NAME_HELP,
    CUSTOM_MODEL_OBJECT_TYPE,
    KNOWN_TAGS,
    SYSTEM_MODELS,
    custom_field_pattern,
)
from ingestion.destinations import DestinationInvalid, destination_create, destination_update
from ingestion.models import Destination
from journeys.models import JourneyEventConfig, Trigger
from journeys.services import (
    CONFIG_FIELDS,
    journey_event_config_create,
    journey_event_config_update,
)

Status = Literal["created", "updated", "unchanged"]
Spec = dict[str, Any]

# Every key each object may hold; anything else is refused, so a typo never passes silently.
DOCUMENT_KEYS = ("organization", "users", "models", "userEvents", "destinations")
ORGANIZATION_KEYS = ("name", "groupKey", "callback")
CALLBACK_KEYS = ("url", "enabled")
USER_KEYS = ("username", "password", "role", "apiKeys")
API_KEY_KEYS = ("name", "key")
MODEL_KEYS = ("name", "objectType", "momCode", "tags", "fields")
FIELD_KEYS = ("name", "label", "required")
USER_EVENT_KEYS = ("ref", "model", "trigger", *CONFIG_FIELDS)
USER_EVENT_REF_MAX = 100
DESTINATION_KEYS = ("name", "url", "enabled", "events")
DESTINATION_NAME_MAX = 100

OBJECT_TYPES = (CUSTOM_MODEL_OBJECT_TYPE, *services.SYSTEM_OBJECT_TYPES)
SYSTEM_MODEL_NAMES = {SYSTEM_MODELS[t].name: t for t in services.SYSTEM_OBJECT_TYPES}

# Column sizes (cdp.models), checked here so that a long value names its path.
ORGANIZATION_NAME_MAX = 200
USERNAME_MAX = 150
PASSWORD_MAX = 128
API_KEY_NAME_MAX = 100
MODEL_NAME_MAX = 100
FIELD_LABEL_MAX = 100


@dataclass(frozen=True)
class ProvisioningError:
    """One bad value: `path` is its JSON path (`models[2].fields[0].name`), "" for the file."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ProvisioningInvalid(Exception):
    """The file was refused; nothing was written."""

    def __init__(self, errors: list[ProvisioningError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


# ---------------------------------------------------------------------------------------
# Results: what a run did, and what a client needs from it.


@dataclass
class ApiKeyOutcome:
    name: str
    status: Status
    # The raw key, only when this run created it or the file gave it: never read back.
    key: str | None
    given: bool


@dataclass
class UserOutcome:
    username: str
    role: str
    status: Status
    api_keys: list[ApiKeyOutcome] = field(default_factory=list)


@dataclass
class ModelOutcome:
    name: str
    object_type: str
    mom_code: str | None
    status: Status
    fields_created: list[str] = field(default_factory=list)
    fields_updated: list[str] = field(default_factory=list)


@dataclass
class UserEventOutcome:
    ref: str
    config_id: str
    event_key: str
    status: Status


@dataclass
class DestinationOutcome:
    name: str
    status: Status
    # The signing secret, only when this run created the destination: never read back.
    secret: str | None = None


@dataclass
class OrganizationOutcome:
    name: str
    group_key: str
    status: Status
    # The callback signing secret, only when this run generated it: never read back.
    callback_secret: str | None = None


@dataclass
class ProvisioningResult:
    organization: OrganizationOutcome
    users: list[UserOutcome]
    models: list[ModelOutcome]
    user_events: list[UserEventOutcome] = field(default_factory=list)
    destinations: list[DestinationOutcome] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return (
            self.organization.status != "unchanged"
            or any(u.status != "unchanged" for u in self.users)
            or any(k.status != "unchanged" for u in self.users for k in u.api_keys)
            or any(m.status != "unchanged" for m in self.models)
            or any(e.status != "unchanged" for e in self.user_events)
            or any(d.status != "unchanged" for d in self.destinations)
        )

    def as_json(self) -> dict[str, Any]:
        """The `--json` shape. `callbackSecret` is null unless this run
        generated it (the first time the organization got a callback URL)."""
        return {
            "organization": {
                "name": self.organization.name,
                "groupKey": self.organization.group_key,
                "callbackSecret": self.organization.callback_secret,
            },
            "users": [
                {
                    "username": user.username,
                    "apiKeys": [{"name": k.name, "key": k.key} for k in user.api_keys],
                }
                for user in self.users
            ],
            "models": [
                {"name": m.name, "objectType": m.object_type, "momCode": m.mom_code}
                for m in self.models
            ],
            "userEvents": [
                {"ref": e.ref, "jeConfigId": e.config_id, "jeEventKey": e.event_key}
                for e in self.user_events
            ],
            "destinations": [{"name": d.name, "secret": d.secret} for d in self.destinations],
        }


# ---------------------------------------------------------------------------------------
# Reading and validating: pure functions over the parsed document.


def provisioning_file_read(path: str | Path) -> object:
    """The parsed JSON of `path`. Raises ProvisioningInvalid when the file is missing,
    unreadable, not UTF-8 or not JSON, or repeats a key inside one object (JSON would
    silently keep the last one)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _invalid("", f"file not found: {path}") from None
    except UnicodeDecodeError:
        raise _invalid("", f"{path} is not UTF-8 text") from None
    except OSError as error:
        raise _invalid("", f"cannot read {path}: {error.strerror}") from None
    try:
        return json.loads(text, object_pairs_hook=_object_without_duplicates)
    except json.JSONDecodeError as error:
        raise _invalid(
            "", f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    except _DuplicateKey as error:
        raise _invalid(
            "", f"not valid JSON: key {error.key!r} appears twice in one object"
        ) from None


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def provisioning_validate(document: object) -> list[ProvisioningError]:
    """Every error in `document`, section by section; an empty list means
    `provisioning_apply` may run. Reads no database."""
    errors: list[ProvisioningError] = []
    root = _object(document, "", DOCUMENT_KEYS, ("organization",), errors)
    if root is None:
        return errors
    validators: dict[str, Callable[[object, str, list[ProvisioningError]], None]] = {
        "organization": _organization_validate,
        "users": _users_validate,
        "models": _models_validate,
        "userEvents": _user_events_validate,
        "destinations": _destinations_validate,
    }
    for key, validate in validators.items():
        if root.get(key) is not None:
            validate(root[key], key, errors)
    return errors


def _organization_validate(value: object, path: str, errors: list[ProvisioningError]) -> None:
    spec = _object(value, path, ORGANIZATION_KEYS, ("name",), errors)
    if spec is None:
        return
    _text(spec, "name", path, errors, max_length=ORGANIZATION_NAME_MAX)
    _matching(
        spec,
        "groupKey",
        path,
        errors,
        identifiers.GROUP_KEY_RE,
        "a group key is 32 lowercase hexadecimal characters",
    )
    if spec.get("callback") is not None:
        _callback_validate(spec["callback"], _key_path(path, "callback"), errors)


def _callback_validate(value: object, path: str, errors: list[ProvisioningError]) -> None:
    """`{"url", "enabled"}`, both optional (absent keeps the stored value); `url` may be
    blank to remove it. Whether the URL's host is public is judged when applying."""
    spec = _object(value, path, CALLBACK_KEYS, (), errors)
    if spec is None:
        return
    url = _text(
        spec, "url", path, errors, max_length=callback_settings.CALLBACK_URL_MAX_LENGTH, blank=True
    )
    if url and (problem := callback_settings.callback_url_syntax_error(url.strip())) is not None:
        errors.append(ProvisioningError(_key_path(path, "url"), problem))
    _boolean(spec, "enabled", path, errors)
    if spec.get("enabled") is True and url is not None and not url.strip():
        errors.append(
            ProvisioningError(_key_path(path, "enabled"), "callbacks need a url to be enabled")
        )


def _users_validate(value: object, path: str, errors: list[ProvisioningError]) -> None:
    usernames: dict[str, str] = {}
    key_prefixes: dict[str, str] = {}
    for item_path, item in _items(value, path, errors):
        spec = _object(item, item_path, USER_KEYS, ("username", "role"), errors)
        if spec is None:
            continue
        username = _text(spec, "username", item_path, errors, max_length=USERNAME_MAX)
        if username is not None:
            _username_check(username, _key_path(item_path, "username"), usernames, errors)
        _text(spec, "password", item_path, errors, max_length=PASSWORD_MAX)
        _choice(spec, "role", item_path, errors, tuple(Role.values))
        if spec.get("apiKeys") is not None:
            _api_keys_validate(
                spec["apiKeys"], _key_path(item_path, "apiKeys"), key_prefixes, errors
            )


def _username_check(
    username: str, path: str, seen: dict[str, str], errors: list[ProvisioningError]
) -> None:
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        errors.append(
            ProvisioningError(path, "a username holds only letters, digits and @ . + - _")
        )
    _unique(username, path, seen, "username", errors)


def _api_keys_validate(
    value: object, path: str, prefixes: dict[str, str], errors: list[ProvisioningError]
) -> None:
    """`prefixes` spans the whole file: two keys of one organization may not share one."""
    names: dict[str, str] = {}
    for item_path, item in _items(value, path, errors):
        spec = _object(item, item_path, API_KEY_KEYS, ("name",), errors)
        if spec is None:
            continue
        name = _text(spec, "name", item_path, errors, max_length=API_KEY_NAME_MAX)
        if name is not None:
            _unique(name, _key_path(item_path, "name"), names, "API key name", errors)
        raw = _matching(
            spec,
            "key",
            item_path,
            errors,
            keys.API_KEY_RE,
            "an API key is 40 lowercase hexadecimal characters",
        )
        if raw is not None:
            key_path = _key_path(item_path, "key")
            prefix = keys.api_key_prefix(raw)
            if prefix in prefixes:
                errors.append(
                    ProvisioningError(
                        key_path,
                        f"starts with the same {keys.API_KEY_PREFIX_LENGTH} characters as "
                        f"{prefixes[prefix]}: keys of one organization need distinct prefixes",
                    )
                )
            else:
                prefixes[prefix] = key_path


def _models_validate(value: object, path: str, errors: list[ProvisioningError]) -> None:
    seen: dict[str, dict[str, str]] = {"name": {}, "objectType": {}, "momCode": {}}
    for item_path, item in _items(value, path, errors):
        spec = _object(item, item_path, MODEL_KEYS, (), errors)
        if spec is None:
            continue
        object_type = _choice(spec, "objectType", item_path, errors, OBJECT_TYPES)
        if spec.get("objectType") is None or object_type == CUSTOM_MODEL_OBJECT_TYPE:
            _custom_model_validate(spec, item_path, seen, errors)
        elif object_type is not None:
            _system_model_validate(spec, item_path, object_type, seen, errors)
        if spec.get("fields") is not None:
            _fields_validate(spec["fields"], _key_path(item_path, "fields"), errors)


def _custom_model_validate(
    spec: Spec, path: str, seen: dict[str, dict[str, str]], errors: list[ProvisioningError]
) -> None:
    name = _text(spec, "name", path, errors, max_length=MODEL_NAME_MAX)
    if name is not None:
        if name in SYSTEM_MODEL_NAMES:
            errors.append(
                ProvisioningError(
                    _key_path(path, "name"),
                    f"{name!r} is the system model {SYSTEM_MODEL_NAMES[name]!r}: declare its "
                    f'fields with {{"objectType": "{SYSTEM_MODEL_NAMES[name]}"}}',
                )
            )
        _unique(name, _key_path(path, "name"), seen["name"], "model name", errors)
    mom_code = _matching(
        spec,
        "momCode",
        path,
        errors,
        identifiers.MOM_CODE_RE,
        "a momCode reads M-XXXXX-O-XXXXX-M, X an upper-case letter or digit",
    )
    if mom_code is not None:
        _unique(mom_code, _key_path(path, "momCode"), seen["momCode"], "momCode", errors)
    if spec.get("tags") is not None:
        _tags_validate(spec["tags"], _key_path(path, "tags"), errors)


def _system_model_validate(
    spec: Spec,
    path: str,
    object_type: str,
    seen: dict[str, dict[str, str]],
    errors: list[ProvisioningError],
) -> None:
    for key in ("name", "momCode", "tags"):
        if spec.get(key) is not None:
            errors.append(
                ProvisioningError(
                    _key_path(path, key),
                    f"the system model {object_type!r} is named by objectType alone and "
                    "takes only fields: remove it",
                )
            )
    _unique(object_type, _key_path(path, "objectType"), seen["objectType"], "objectType", errors)


def _tags_validate(value: object, path: str, errors: list[ProvisioningError]) -> None:
    seen: dict[str, str] = {}
    for item_path, tag in _items(value, path, errors):
        if not isinstance(tag, str):
            errors.append(ProvisioningError(item_path, "must be a string"))
        elif tag not in KNOWN_TAGS:
            errors.append(
                ProvisioningError(item_path, f"unknown tag {tag!r}: use {_one_of(KNOWN_TAGS)}")
            )
        else:
            _unique(tag, item_path, seen, "tag", errors)


def _fields_validate(value: object, path: str, errors: list[ProvisioningError]) -> None:
    names: dict[str, str] = {}
    for item_path, item in _items(value, path, errors):
        spec = _object(item, item_path, FIELD_KEYS, ("name",), errors)
        if spec is None:
            continue
        name = _text(spec, "name", item_path, errors, max_length=40)
        name_path = _key_path(item_path, "name")
        if name is not None:
            if custom_field_pattern(name) is None:
                errors.append(
                    ProvisioningError(
                        name_path,
                        f"{name!r} is not a custom field name: use {CUSTOM_FIELD_NAME_HELP}",
                    )
                )
            else:
                _unique(name, name_path, names, "field name", errors)
        _text(spec, "label", item_path, errors, max_length=FIELD_LABEL_MAX, blank=True)
        _boolean(spec, "required", item_path, errors)


def _user_events_validate(value: object, path: str, errors: list[ProvisioningError]) -> None:
    """The shape of each User Event; its rules are judged against the model when applied."""
    refs: dict[str, str] = {}
    for item_path, item in _items(value, path, errors):
        spec = _object(item, item_path, USER_EVENT_KEYS, ("ref", "model", "trigger"), errors)
        if spec is None:
            continue
        ref = _text(spec, "ref", item_path, errors, max_length=USER_EVENT_REF_MAX)
        if ref is not None:
            _unique(ref, _key_path(item_path, "ref"), refs, "ref", errors)
        _text(spec, "model", item_path, errors, max_length=MODEL_NAME_MAX)
        _choice(spec, "trigger", item_path, errors, tuple(Trigger.values))


def _destinations_validate(value: object, path: str, errors: list[ProvisioningError]) -> None:
    """Each destination's shape; its URL's host is judged when applying."""
    names: dict[str, str] = {}
    for item_path, item in _items(value, path, errors):
        spec = _object(item, item_path, DESTINATION_KEYS, ("name", "url"), errors)
        if spec is None:
            continue
        name = _text(spec, "name", item_path, errors, max_length=DESTINATION_NAME_MAX)
        if name is not None:
            _unique(name.strip(), _key_path(item_path, "name"), names, "name", errors)
        url = _text(
            spec, "url", item_path, errors, max_length=callback_settings.CALLBACK_URL_MAX_LENGTH
        )
        if url and (problem := callback_settings.callback_url_syntax_error(url.strip())):
            errors.append(ProvisioningError(_key_path(item_path, "url"), problem))
        _boolean(spec, "enabled", item_path, errors)
        events = spec.get("events")
        if events is not None and (
            not isinstance(events, list)
            or any(not isinstance(e, str) or not e.strip() for e in events)
        ):
            errors.append(
                ProvisioningError(
                    _key_path(item_path, "events"), "must be a list of event names (strings)"
                )
            )


# Small checks. Each appends its errors and returns the value when it is usable, so the
# callers can go on judging the rest of the file. A key holding null counts as absent,
# everywhere: a required one is reported missing, an optional one is left alone.


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _object(
    value: object,
    path: str,
    allowed: tuple[str, ...],
    required: tuple[str, ...],
    errors: list[ProvisioningError],
) -> Spec | None:
    if not isinstance(value, dict):
        errors.append(ProvisioningError(path, "must be a JSON object"))
        return None
    for key in value:
        if key not in allowed:
            errors.append(
                ProvisioningError(_key_path(path, key), f"unknown key: use {_one_of(allowed)}")
            )
    for key in required:
        if value.get(key) is None:
            errors.append(ProvisioningError(_key_path(path, key), "is required"))
    return value


def _items(value: object, path: str, errors: list[ProvisioningError]) -> list[tuple[str, Any]]:
    if not isinstance(value, list):
        errors.append(ProvisioningError(path, "must be a JSON list"))
        return []
    return [(f"{path}[{index}]", item) for index, item in enumerate(value)]


def _text(
    spec: Spec,
    key: str,
    path: str,
    errors: list[ProvisioningError],
    *,
    max_length: int,
    blank: bool = False,
) -> str | None:
    """The string at `key`, or None (absent, null or bad). `_object` reports missing keys."""
    value = spec.get(key)
    if value is None:
        return None
    key_path = _key_path(path, key)
    if not isinstance(value, str):
        errors.append(ProvisioningError(key_path, "must be a string"))
    elif not blank and not value.strip():
        errors.append(ProvisioningError(key_path, "must not be blank"))
    elif len(value) > max_length:
        errors.append(ProvisioningError(key_path, f"is longer than {max_length} characters"))
    else:
        return value
    return None


def _matching(
    spec: Spec,
    key: str,
    path: str,
    errors: list[ProvisioningError],
    pattern: Any,
    help_text: str,
) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    key_path = _key_path(path, key)
    if not isinstance(value, str):
        errors.append(ProvisioningError(key_path, f"must be a string: {help_text}"))
    elif not pattern.match(value):
        errors.append(ProvisioningError(key_path, f"{value!r} is invalid: {help_text}"))
    else:
        return value
    return None


def _choice(
    spec: Spec,
    key: str,
    path: str,
    errors: list[ProvisioningError],
    choices: tuple[str, ...],
) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or value not in choices:
        errors.append(
            ProvisioningError(_key_path(path, key), f"{value!r} is invalid: use {_one_of(choices)}")
        )
        return None
    return value


def _boolean(spec: Spec, key: str, path: str, errors: list[ProvisioningError]) -> None:
    value = spec.get(key)
    if value is not None and not isinstance(value, bool):
        errors.append(ProvisioningError(_key_path(path, key), "must be true or false"))


def _unique(
    value: str, path: str, seen: dict[str, str], what: str, errors: list[ProvisioningError]
) -> None:
    if value in seen:
        errors.append(ProvisioningError(path, f"{what} {value!r} already appears at {seen[value]}"))
    else:
        seen[value] = path


def _one_of(choices: tuple[str, ...]) -> str:
    return ", ".join(choices)


def _invalid(path: str, message: str) -> ProvisioningInvalid:
    return ProvisioningInvalid([ProvisioningError(path, message)])


# ---------------------------------------------------------------------------------------
# Applying: one step per section, all inside one transaction.


def tenant_provision(*, document: object) -> ProvisioningResult:
    """Validate `document`, then apply it. Raises ProvisioningInvalid, writing nothing,
    when the file or the database refuses a value."""
    errors = provisioning_validate(document)
    if errors:
        raise ProvisioningInvalid(errors)
    assert isinstance(document, dict)
    return provisioning_apply(document=document)


def provisioning_apply(*, document: Spec) -> ProvisioningResult:
    """Create or update the organization `document` describes, in one transaction.

    Call it only with a document `provisioning_validate` accepted. Raises
    ProvisioningInvalid, and rolls everything back, when a value clashes with stored rows.
    """
    with transaction.atomic():
        organization, organization_outcome = _organization_apply(document["organization"])
        users = _users_apply(
            organization=organization, items=document.get("users") or [], path="users"
        )
        models = _models_apply(
            organization=organization, items=document.get("models") or [], path="models"
        )
        user_events = _user_events_apply(
            organization=organization,
            items=document.get("userEvents") or [],
            path="userEvents",
        )
        destinations = [
            _destination_apply(organization=organization, spec=spec, path=f"destinations[{i}]")
            for i, spec in enumerate(document.get("destinations") or [])
        ]
    return ProvisioningResult(
        organization=organization_outcome,
        users=users,
        models=models,
        user_events=user_events,
        destinations=destinations,
    )


def _destination_apply(*, organization: Organization, spec: Spec, path: str) -> DestinationOutcome:
    """Match by name: create it (its secret is this run's to print), or update its URL,
    events and state; absent keys keep the stored values."""
    name = spec["name"].strip()
    stored = Destination.objects.filter(organization=organization, name=name).first()
    events = spec.get("events")
    try:
        if stored is None:
            _, secret = destination_create(
                organization=organization,
                name=name,
                url=spec["url"].strip(),
                events=events or [],
                enabled=spec.get("enabled", True) is not False,
            )
            return DestinationOutcome(name, "created", secret)
        before = (stored.url, sorted(stored.events), stored.enabled)
        destination_update(
            destination=stored,
            url=spec["url"].strip(),
            events=events,
            enabled=spec.get("enabled"),
        )
    except DestinationInvalid as refused:
        key, _, message = str(refused).partition(": ")
        raise _invalid(_key_path(path, key), message) from None
    after = (stored.url, sorted(stored.events), stored.enabled)
    return DestinationOutcome(name, "updated" if after != before else "unchanged")


def _organization_apply(spec: Spec) -> tuple[Organization, OrganizationOutcome]:
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
    if spec.get("callback") is not None:
        changed, secret = _callback_apply(organization=organization, spec=spec["callback"])
        if changed and status == "unchanged":
            status = "updated"
    outcome = OrganizationOutcome(
        name=name, group_key=organization.group_key, status=status, callback_secret=secret
    )
    return organization, outcome


def _callback_apply(*, organization: Organization, spec: Spec) -> tuple[bool, str | None]:
    """Set the callback through its service; returns whether anything changed and the
    secret, when this run generated one."""
    url = organization.callback_url if spec.get("url") is None else spec["url"].strip()
    enabled = organization.callback_enabled if spec.get("enabled") is None else spec["enabled"]
    before = (organization.callback_url, organization.callback_enabled)
    secret = _refusing(
        "organization.callback",
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
        raise _invalid(
            "organization.name",
            f"several organizations are named {name!r}: give groupKey to say which one",
        )
    return matches[0] if matches else None


def _users_apply(*, organization: Organization, items: list[Spec], path: str) -> list[UserOutcome]:
    return [
        _user_apply(organization=organization, spec=spec, path=f"{path}[{index}]")
        for index, spec in enumerate(items)
    ]


def _user_apply(*, organization: Organization, spec: Spec, path: str) -> UserOutcome:
    """A new user gets the file's password; an existing user's password is left alone
    (users are shared by organizations, and one tenant's file must not reset it)."""
    username: str = spec["username"]
    role: str = spec["role"]
    user = get_user_model().objects.filter(username=username).first()
    status: Status = "unchanged"
    if user is None:
        user = _refusing(
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
        for index, key_spec in enumerate(spec.get("apiKeys") or [])
    ]
    return UserOutcome(username=username, role=role, status=status, api_keys=api_keys)


def _api_key_apply(*, membership: Membership, spec: Spec, path: str) -> ApiKeyOutcome:
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
            raise _invalid(
                f"{path}.key",
                f"{membership.user.get_username()} already has a key named {name!r} with "
                f"another value ({live[0].prefix}…): provisioning never replaces a key; "
                "revoke it in the Console first, or remove `key` from the file",
            )
        if any(keys.digest_matches(raw, k.digest) for k in stored):
            raise _invalid(f"{path}.key", "this key was revoked: give another value")
    elif live:
        return ApiKeyOutcome(name=name, status="unchanged", key=None, given=False)
    _api_key, raw_value = _refusing(
        path, services.api_key_create, membership=membership, name=name, raw_key=raw
    )
    return ApiKeyOutcome(name=name, status="created", key=raw_value, given=given)


def _models_apply(
    *, organization: Organization, items: list[Spec], path: str
) -> list[ModelOutcome]:
    return [
        _model_apply(organization=organization, spec=spec, path=f"{path}[{index}]")
        for index, spec in enumerate(items)
    ]


def _model_apply(*, organization: Organization, spec: Spec, path: str) -> ModelOutcome:
    object_type = spec.get("objectType") or CUSTOM_MODEL_OBJECT_TYPE
    if object_type == CUSTOM_MODEL_OBJECT_TYPE:
        data_model, status = _custom_model_apply(organization=organization, spec=spec, path=path)
    else:
        # organization_create / system_models_ensure made every system model already.
        data_model = DataModel.objects.get(
            organization=organization, kind=ModelKind.SYSTEM, object_type=object_type
        )
        status = "unchanged"
    created, updated = _fields_apply(
        organization=organization,
        data_model=data_model,
        items=spec.get("fields") or [],
        path=f"{path}.fields",
    )
    if status == "unchanged" and (created or updated):
        status = "updated"
    return ModelOutcome(
        name=data_model.name,
        object_type=data_model.object_type,
        mom_code=data_model.mom_code,
        status=status,
        fields_created=created,
        fields_updated=updated,
    )


def _custom_model_apply(
    *, organization: Organization, spec: Spec, path: str
) -> tuple[DataModel, Status]:
    name: str = spec["name"]
    mom_code: str | None = spec.get("momCode")
    tags: list[str] | None = spec.get("tags")
    data_model = DataModel.objects.filter(
        organization=organization, kind=ModelKind.CUSTOM, name=name
    ).first()
    if data_model is None:
        data_model = _refusing(
            path,
            services.custom_model_create,
            organization=organization,
            name=name,
            mom_code=mom_code,
            tags=tags,
        )
        return data_model, "created"
    if mom_code is not None and mom_code != data_model.mom_code:
        raise _invalid(
            f"{path}.momCode",
            f"model {name!r} has momCode {data_model.mom_code}, and a momCode never changes",
        )
    if tags is not None and tags != data_model.tags:
        services.custom_model_tags_set(organization=organization, data_model=data_model, tags=tags)
        return data_model, "updated"
    return data_model, "unchanged"


def _fields_apply(
    *, organization: Organization, data_model: DataModel, items: list[Spec], path: str
) -> tuple[list[str], list[str]]:
    """Create missing fields, update label and required where the file gives other values;
    return the names created and updated."""
    stored = {
        fd.name: fd
        for fd in FieldDefinition.objects.filter(organization=organization, data_model=data_model)
    }
    created: list[str] = []
    updated: list[str] = []
    for index, spec in enumerate(items):
        name: str = spec["name"]
        label, required = spec.get("label"), spec.get("required")
        definition = stored.get(name)
        if definition is None:
            _refusing(
                f"{path}[{index}]",
                services.field_definition_create,
                organization=organization,
                data_model=data_model,
                name=name,
                label=label or "",
                required=bool(required),
            )
            created.append(name)
            continue
        label = definition.label if label is None else label
        required = definition.required if required is None else required
        if (label, required) != (definition.label, definition.required):
            services.field_definition_update(
                organization=organization,
                field_definition=definition,
                label=label,
                required=required,
            )
            updated.append(name)
    return created, updated


def _user_events_apply(
    *, organization: Organization, items: list[Spec], path: str
) -> list[UserEventOutcome]:
    return [
        _user_event_apply(organization=organization, spec=spec, path=f"{path}[{index}]")
        for index, spec in enumerate(items)
    ]


def _user_event_model(*, organization: Organization, name: str, path: str) -> DataModel:
    """`model` is a custom model's name or a system object type."""
    models = DataModel.objects.filter(organization=organization)
    if name in services.SYSTEM_OBJECT_TYPES:
        found = models.filter(kind=ModelKind.SYSTEM, object_type=name).first()
    else:
        found = models.filter(kind=ModelKind.CUSTOM, name=name).first()
    if found is None:
        raise _invalid(
            f"{path}.model",
            f"no model {name!r}: use a custom model's name or one of "
            f"{_one_of(services.SYSTEM_OBJECT_TYPES)}",
        )
    return found


def _user_event_apply(*, organization: Organization, spec: Spec, path: str) -> UserEventOutcome:
    """Match by `ref`. The model and trigger of a stored User Event never change (its ID
    names the trigger, and clients hold it); the other settings are updated."""
    ref: str = spec["ref"]
    data_model = _user_event_model(organization=organization, name=spec["model"], path=path)
    settings = {name: spec[name] for name in CONFIG_FIELDS if spec.get(name) is not None}
    config = JourneyEventConfig.objects.filter(organization=organization, ref=ref).first()
    if config is None:
        config = _refusing_paths(
            path,
            journey_event_config_create,
            organization=organization,
            data_model=data_model,
            trigger=spec["trigger"],
            settings=settings,
            ref=ref,
        )
        status: Status = "created"
    else:
        if config.data_model_id != data_model.pk or config.trigger != spec["trigger"]:
            raise _invalid(
                path,
                f"User Event {ref!r} exists on {config.data_model.name} with trigger "
                f"{config.trigger}: its model and trigger never change; give another ref",
            )
        config, changed = _refusing_paths(
            path,
            journey_event_config_update,
            organization=organization,
            config=config,
            settings=settings,
        )
        status = "updated" if changed else "unchanged"
    return UserEventOutcome(
        ref=ref, config_id=config.config_id, event_key=config.event_key, status=status
    )


def _refusing_paths(path: str, service: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a journeys service whose ValidationError messages start with their own path
    (`filter.conditions[1].operator: …`); report them under `path`."""
    try:
        return service(**kwargs)
    except ValidationError as error:
        problems = []
        for message in error.messages:
            inner, _, text = message.partition(": ")
            problems.append(ProvisioningError(_key_path(path, inner), text or message))
        raise ProvisioningInvalid(problems) from None


def _refusing(path: str, service: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a service; turn its ValidationError into ProvisioningInvalid at `path`, the
    error's field names becoming keys under it (`models[0]` + `momCode`)."""
    try:
        return service(**kwargs)
    except ValidationError as error:
        if hasattr(error, "error_dict"):
            raise ProvisioningInvalid(
                [
                    ProvisioningError(_key_path(path, key), message)
                    for key, messages in error.message_dict.items()
                    for message in messages
                ]
            ) from None
        raise ProvisioningInvalid([ProvisioningError(path, m) for m in error.messages]) from None
