"""The `destinations` section of a provisioning file: webhook destinations, matched by
name. Judged in two steps: their shape and URL text here, the URL's host (the SSRF guard,
which needs DNS) by ingestion.destinations when applied. A destination's signing secret
is made once, printed by the run that creates it, and never replaced."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from cdp import callback_settings
from cdp.models import Organization
from cdp.provisioning.errors import invalid, path_join
from cdp.provisioning.registry import section_register
from cdp.provisioning.results import DestinationOutcome
from cdp.provisioning.serializers import Boolean, ItemList, Problems, StrictSerializer, Text
from ingestion.destinations import DestinationInvalid, destination_create, destination_update
from ingestion.models import Destination


class EventNames(serializers.ListField):
    """A list of non-blank event names, refused as a whole: one message for the list."""

    default_error_messages = {"not_a_list": "must be a list of event names (strings)"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=Text(), **kwargs)

    def run_child_validation(self, data: list[Any]) -> list[str]:
        try:
            return super().run_child_validation(data)
        except serializers.ValidationError:
            self.fail("not_a_list")


class DestinationSerializer(StrictSerializer):
    name = Text(max_length=100)
    url = Text(max_length=callback_settings.CALLBACK_URL_MAX_LENGTH)
    enabled = Boolean(required=False)
    events = EventNames(required=False)

    def validate_url(self, url: str) -> str:
        if problem := callback_settings.callback_url_syntax_error(url.strip()):
            raise serializers.ValidationError(problem)
        return url


class DestinationsSerializer(ItemList):
    """Each name, stripped, appears once."""

    child = DestinationSerializer()

    def validate(self, destinations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        problems = Problems(self)
        name_once = problems.once("name")
        for i, spec in enumerate(destinations):
            name_once(spec["name"].strip(), (i, "name"))
        problems.raise_any()
        return destinations


def destinations_apply(
    *, organization: Organization, items: list[dict[str, Any]], path: str
) -> list[DestinationOutcome]:
    return [
        _destination_apply(organization=organization, spec=spec, path=path_join(path, index))
        for index, spec in enumerate(items)
    ]


def _destination_apply(
    *, organization: Organization, spec: dict[str, Any], path: str
) -> DestinationOutcome:
    """Create it (its secret is this run's to print), or update its URL, events and state;
    absent keys keep the stored values."""
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
                enabled=spec.get("enabled", True),
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
        raise invalid(path_join(path, key), message) from None
    after = (stored.url, sorted(stored.events), stored.enabled)
    return DestinationOutcome(name, "updated" if after != before else "unchanged")


section_register(
    key="destinations", position=40, validator=DestinationsSerializer, apply=destinations_apply
)
