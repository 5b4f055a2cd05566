"""The provisioning file as a whole: reading it, judging it and applying it, section by
section in file order (`cdp.provisioning.registry`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.db import transaction
from rest_framework import serializers

from cdp.provisioning.errors import ProvisioningError, ProvisioningInvalid, invalid
from cdp.provisioning.organization import ORGANIZATION, organization_apply
from cdp.provisioning.registry import sections
from cdp.provisioning.results import ProvisioningResult
from cdp.provisioning.serializers import StrictSerializer, errors_flatten


def provisioning_file_read(path: str | Path) -> object:
    """The parsed JSON of `path`. Raises ProvisioningInvalid when the file is missing,
    unreadable, not UTF-8 or not JSON, or repeats a key inside one object (JSON would
    silently keep the last one)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise invalid("", f"file not found: {path}") from None
    except UnicodeDecodeError:
        raise invalid("", f"{path} is not UTF-8 text") from None
    except OSError as error:
        raise invalid("", f"cannot read {path}: {error.strerror}") from None
    try:
        return json.loads(text, object_pairs_hook=_object_without_duplicates)
    except json.JSONDecodeError as error:
        raise invalid(
            "", f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    except _DuplicateKey as error:
        raise invalid(
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


class DocumentSerializer(StrictSerializer):
    """The whole file: one key per registered section."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {section.key: section.validator(required=section.required) for section in sections()}


def _judged(document: object) -> tuple[dict[str, Any], list[ProvisioningError]]:
    # run_validation rather than is_valid(): is_valid() reports a null document as
    # "No data provided", where the file's author reads "must be a JSON object".
    try:
        return DocumentSerializer().run_validation(document), []
    except serializers.ValidationError as error:
        return {}, errors_flatten(error.detail)


def provisioning_validate(document: object) -> list[ProvisioningError]:
    """Every error in `document`, section by section; an empty list means
    `provisioning_apply` may run. Reads no database.

    Values are compared with each other (a name used twice, `enabled` without a `url`)
    once each of them is valid, so such an error may show only after the others are
    fixed."""
    _, errors = _judged(document)
    return errors


def provisioning_apply(*, document: object) -> ProvisioningResult:
    """Create or update the organization `document` describes, in one transaction.

    Raises ProvisioningInvalid, writing nothing, when `provisioning_validate` refuses the
    document, and rolls everything back when a value clashes with stored rows.
    """
    validated, errors = _judged(document)
    if errors:
        raise ProvisioningInvalid(errors)
    with transaction.atomic():
        # Every other section belongs to the organization, so it is found or made first.
        organization, organization_outcome = organization_apply(spec=validated[ORGANIZATION])
        outcomes = {
            section.key: section.apply(
                organization=organization, items=validated.get(section.key, []), path=section.key
            )
            for section in sections()
            if section.key != ORGANIZATION
        }
    return ProvisioningResult(organization=organization_outcome, sections=outcomes)
