"""Writes for tenants, access and data models. Keyword-only, organization first.

One module per domain; this package re-exports their public names, so callers write
`from cdp import services` and `services.organization_create(...)` without knowing
which module holds what:

- `organizations`: creating and renaming tenants.
- `members`: users, memberships and roles, Console access.
- `api_keys`: API keys and their tokens.
- `data_models`: system and custom models, their tags and custom fields.
"""

from cdp.services.api_keys import (
    TokenExpired,
    TokenInvalid,
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
    auth_tokens_purge_expired,
    token_check,
    token_issue,
    token_lookup,
    token_verify,
)
from cdp.services.data_models import (
    SYSTEM_OBJECT_TYPES,
    custom_model_create,
    custom_model_tags_set,
    field_definition_create,
    field_definition_update,
    system_models_ensure,
)
from cdp.services.members import (
    MANAGER_ROLES,
    console_access_grant,
    member_add,
    member_invite,
    member_remove,
    member_role_set,
    user_create,
)
from cdp.services.organizations import organization_create, organization_rename

__all__ = [
    "MANAGER_ROLES",
    "SYSTEM_OBJECT_TYPES",
    "TokenExpired",
    "TokenInvalid",
    "api_key_authenticate",
    "api_key_create",
    "api_key_revoke",
    "auth_tokens_purge_expired",
    "console_access_grant",
    "custom_model_create",
    "custom_model_tags_set",
    "field_definition_create",
    "field_definition_update",
    "member_add",
    "member_invite",
    "member_remove",
    "member_role_set",
    "organization_create",
    "organization_rename",
    "system_models_ensure",
    "token_check",
    "token_issue",
    "token_lookup",
    "token_verify",
    "user_create",
]
