"""The sections of a provisioning file, each registered by the app that owns it.

The core cannot import the apps, so each app contributes its sections from its own
`provisioning.py`, which CdpConfig.ready imports with autodiscover_modules, the way
admin.autodiscover() finds each `admin.py`. The document's keys, the order in which its
sections are judged and applied, and what each one does all come from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.serializers import BaseSerializer


@dataclass(frozen=True)
class Section:
    """One top-level key of the file.

    `validator` judges the key's value without touching the database (a DRF serializer
    class, instantiated with `required=`). `apply` writes the validated value:
    `apply(*, organization, items, path)` returns the section's outcomes, each with
    `changed` and `as_json()`. The organization's own section is the exception, applied
    first with `apply(*, spec)` because it finds or creates the organization the other
    sections belong to.
    """

    key: str
    position: int
    validator: type[BaseSerializer]
    apply: Callable[..., Any]
    required: bool = False


_sections: dict[str, Section] = {}


def section_register(
    *,
    key: str,
    position: int,
    validator: type[BaseSerializer],
    apply: Callable[..., Any],
    required: bool = False,
) -> None:
    """Add a section. `position` orders it among the others, in file order; two sections
    may share neither a key nor a position, since either would make the file ambiguous."""
    for other in _sections.values():
        if key == other.key or position == other.position:
            raise ImproperlyConfigured(
                f"provisioning section {key!r} at {position} clashes with "
                f"{other.key!r} at {other.position}"
            )
    _sections[key] = Section(
        key=key, position=position, validator=validator, apply=apply, required=required
    )


def sections() -> list[Section]:
    """Every registered section, in file order."""
    return sorted(_sections.values(), key=lambda section: section.position)
