"""What a provisioning run did, and what a client needs from it (`provision --json`).

Every section's outcome says whether it changed anything and what it shows in `--json`.
The outcomes of the apps' sections are defined here too: they are public names of
`cdp.provisioning`, and the core cannot import them from the apps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["created", "updated", "unchanged"]


class _Outcome:
    status: Status

    @property
    def changed(self) -> bool:
        return self.status != "unchanged"


@dataclass
class ApiKeyOutcome(_Outcome):
    name: str
    status: Status
    # The raw key, only when this run created it or the file gave it: never read back.
    key: str | None
    given: bool

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key}


@dataclass
class UserOutcome(_Outcome):
    username: str
    role: str
    status: Status
    api_keys: list[ApiKeyOutcome] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.status != "unchanged" or any(k.changed for k in self.api_keys)

    def as_json(self) -> dict[str, Any]:
        return {"username": self.username, "apiKeys": [k.as_json() for k in self.api_keys]}


@dataclass
class ModelOutcome(_Outcome):
    name: str
    object_type: str
    mom_code: str | None
    status: Status
    fields_created: list[str] = field(default_factory=list)
    fields_updated: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "objectType": self.object_type, "momCode": self.mom_code}


@dataclass
class UserEventOutcome(_Outcome):
    ref: str
    config_id: str
    event_key: str
    status: Status

    def as_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "jeConfigId": self.config_id, "jeEventKey": self.event_key}


@dataclass
class DestinationOutcome(_Outcome):
    name: str
    status: Status
    # The signing secret, only when this run created the destination: never read back.
    secret: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "secret": self.secret}


@dataclass
class OrganizationOutcome(_Outcome):
    name: str
    group_key: str
    status: Status
    # The callback signing secret, only when this run generated it: never read back.
    callback_secret: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "groupKey": self.group_key,
            "callbackSecret": self.callback_secret,
        }


@dataclass
class ProvisioningResult:
    organization: OrganizationOutcome
    # Each later section's outcomes by its key, in file order; [] when the file omits it.
    sections: dict[str, list[Any]]

    @property
    def changed(self) -> bool:
        return self.organization.changed or any(
            outcome.changed for outcomes in self.sections.values() for outcome in outcomes
        )

    def as_json(self) -> dict[str, Any]:
        """The `--json` shape. `callbackSecret` is null unless this run
        generated it (the first time the organization got a callback URL)."""
        return {
            "organization": self.organization.as_json(),
            **{
                key: [outcome.as_json() for outcome in outcomes]
                for key, outcomes in self.sections.items()
            },
        }

    # The sections the command's summary and --demo text print.

    @property
    def users(self) -> list[UserOutcome]:
        return self.sections.get("users", [])

    @property
    def models(self) -> list[ModelOutcome]:
        return self.sections.get("models", [])

    @property
    def user_events(self) -> list[UserEventOutcome]:
        return self.sections.get("userEvents", [])

    @property
    def destinations(self) -> list[DestinationOutcome]:
        return self.sections.get("destinations", [])
