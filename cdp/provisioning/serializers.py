"""The DRF pieces every provisioning section is judged with, and `errors_flatten`, which
turns DRF's nested errors into ProvisioningErrors at their JSON paths.

A provisioning file is stricter than DRF's defaults, so that a mistake never passes
silently: an object refuses keys it does not know, a string must be a JSON string (DRF
would take 42 as "42"), a boolean must be true or false (DRF would take "yes"). A key
holding null counts as absent, everywhere: a required one is reported missing, an
optional one is left alone. The messages are the ones the file's authors have always
read, hence the custom error messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.core.validators import ProhibitNullCharactersValidator
from rest_framework import serializers
from rest_framework.settings import api_settings
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from cdp.provisioning.errors import ProvisioningError, path_join

REQUIRED = "is required"

# A place inside a section's list, relative to it: (2, "fields", 0, "name").
Place = tuple[int | str, ...]


class Text(serializers.CharField):
    """A JSON string, kept as written (DRF would take 42 as "42" and trim spaces). Blank,
    or spaces only, is refused unless `allow_blank`."""

    default_error_messages = {
        "required": REQUIRED,
        "invalid": "must be a string",
        "blank": "must not be blank",
        "max_length": "is longer than {max_length} characters",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, **kwargs)
        # CharField also refuses NUL and lone surrogates, which provisioning has always
        # let through to the services: refusing them is a change of its own to make.
        self.validators = [
            v
            for v in self.validators
            if not isinstance(
                v, ProhibitNullCharactersValidator | ProhibitSurrogateCharactersValidator
            )
        ]

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if not self.allow_blank and not data.strip():
            self.fail("blank")
        return data


class Pattern(serializers.Field):
    """A JSON string matching `pattern`; `shape` tells the author what one looks like."""

    default_error_messages = {
        "required": REQUIRED,
        "invalid": "must be a string: {shape}",
        "mismatch": "{value!r} is invalid: {shape}",
    }

    def __init__(self, *, pattern: re.Pattern[str], shape: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pattern, self.shape = pattern, shape

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid", shape=self.shape)
        if not self.pattern.match(data):
            self.fail("mismatch", value=data, shape=self.shape)
        return data

    def to_representation(self, value: str) -> str:
        return value


class Choice(serializers.ChoiceField):
    """One of `choices`; the message lists them."""

    default_error_messages = {"required": REQUIRED}

    def __init__(self, choices: Sequence[str], **kwargs: Any) -> None:
        messages = {"invalid_choice": "{input!r} is invalid: use " + ", ".join(choices)}
        super().__init__(
            choices, error_messages={**messages, **kwargs.pop("error_messages", {})}, **kwargs
        )


class Boolean(serializers.BooleanField):
    """JSON true or false."""

    default_error_messages = {"required": REQUIRED, "invalid": "must be true or false"}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class List(serializers.ListField):
    """A JSON list of `child` values."""

    default_error_messages = {"required": REQUIRED, "not_a_list": "must be a JSON list"}


class ItemList(serializers.ListSerializer):
    """A JSON list of objects. A section's list subclasses it to judge its items against
    each other in `validate` (a name used twice), once each item is valid."""

    default_error_messages = {"required": REQUIRED, "not_a_list": "must be a JSON list"}


class StrictSerializer(serializers.Serializer):
    """A JSON object with the declared keys and no other (DRF ignores unknown keys)."""

    default_error_messages = {
        "required": REQUIRED,
        "null": "must be a JSON object",
        "invalid": "must be a JSON object",
    }

    class Meta:
        list_serializer_class = ItemList

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return super().to_internal_value(data)
        allowed = ", ".join(self.fields)
        unknown = {key: [f"unknown key: use {allowed}"] for key in data if key not in self.fields}
        present = {key: value for key, value in data.items() if value is not None}
        try:
            value = super().to_internal_value(present)
        except serializers.ValidationError as error:
            raise serializers.ValidationError({**unknown, **_missing_first(error.detail)}) from None
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


def _missing_first(detail: Any) -> dict[str, Any]:
    """An object's errors with its missing keys before its bad values, as authors have
    always read them (DRF reports them in field order)."""

    def missing(messages: Any) -> bool:
        return isinstance(messages, list) and any(
            getattr(m, "code", None) == "required" for m in messages
        )

    return dict(sorted(detail.items(), key=lambda item: not missing(item[1])))


class Problems:
    """What a section's `validate` finds across its items, in DRF's nested error shape so
    that `errors_flatten` reads it like any other error. A section's list is a key of the
    document, so its field name is its JSON path, which messages naming another place in
    the file need. No DRF validator compares the items of a list with each other."""

    def __init__(self, section: serializers.ListSerializer) -> None:
        self.path: str = section.field_name or ""
        self.detail: dict[Any, Any] = {}

    def path_of(self, place: Place) -> str:
        path = self.path
        for key in place:
            path = path_join(path, key)
        return path

    def add(self, place: Place, message: str) -> None:
        node = self.detail
        for key in place[:-1]:
            node = node.setdefault(key, {})
        node.setdefault(place[-1], []).append(message)

    def once(self, what: str) -> Callable[[str, Place], None]:
        """A check that each value given to it appears once; a repeat names the first."""
        first: dict[str, str] = {}

        def check(value: str, place: Place) -> None:
            if value in first:
                self.add(place, f"{what} {value!r} already appears at {first[value]}")
            else:
                first[value] = self.path_of(place)

        return check

    def raise_any(self) -> None:
        if self.detail:
            raise serializers.ValidationError(self.detail)


def errors_flatten(detail: Any, path: str = "") -> list[ProvisioningError]:
    """DRF's nested errors as ProvisioningErrors, each at its JSON path: a field name is a
    key, a list's index a subscript, and an object's own errors (`non_field_errors`) are
    at the object's path."""
    if isinstance(detail, Mapping):
        return [
            error
            for key, inner in detail.items()
            for error in errors_flatten(
                inner, path if key == api_settings.NON_FIELD_ERRORS_KEY else path_join(path, key)
            )
        ]
    if isinstance(detail, list):
        return [error for inner in detail for error in errors_flatten(inner, path)]
    return [ProvisioningError(path, str(detail))]
