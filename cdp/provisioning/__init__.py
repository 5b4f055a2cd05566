"""Provisioning: create or update one organization from a JSON file.

Two steps. `provisioning_validate` judges the whole document without touching the
database and returns every error, each naming the JSON path of the bad value
(`users[0].apiKeys[1].key`). `provisioning_apply` then writes everything through the
services in one transaction; the few values only the database can judge (a momCode
another model holds, a key that clashes with a stored one) raise `ProvisioningInvalid`
there, which rolls the whole run back.

Each top-level key of the file is a section (`registry`): a DRF serializer that judges
it and an apply step, called in file order. The core owns `organization`, `users` and
`models`; the apps register theirs (`journeys` the User Events, `ingestion` the
destinations) from their own `provisioning.py`. User Events are judged in two steps:
their shape here, their filters, update values and event time against the model's schema
while applying (the schema may come from the same file).

Matching, so that a second run changes nothing: the organization by `groupKey` when the
file gives one, else by name; users by username; API keys by name within the membership;
custom models by name, system models by `objectType`; fields by name. Provisioning never
deletes, revokes or replaces anything, and a value absent from the file keeps the stored
one (docs/decisions.md).
"""

from cdp.provisioning import data_models, organization, users  # noqa: F401 (the core's sections)
from cdp.provisioning.document import (
    provisioning_apply,
    provisioning_file_read,
    provisioning_validate,
)
from cdp.provisioning.errors import ProvisioningError, ProvisioningInvalid
from cdp.provisioning.results import (
    ApiKeyOutcome,
    DestinationOutcome,
    ModelOutcome,
    OrganizationOutcome,
    ProvisioningResult,
    Status,
    UserEventOutcome,
    UserOutcome,
)

__all__ = [
    "ApiKeyOutcome",
    "DestinationOutcome",
    "ModelOutcome",
    "OrganizationOutcome",
    "ProvisioningError",
    "ProvisioningInvalid",
    "ProvisioningResult",
    "Status",
    "UserEventOutcome",
    "UserOutcome",
    "provisioning_apply",
    "provisioning_file_read",
    "provisioning_validate",
]
