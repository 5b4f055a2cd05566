"""`manage.py provision FILE [--json | --demo [--host URL]]`.

The work is `cdp.provisioning`; this command reads the file and prints what happened.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp import provisioning
from cdp.provisioning import (
    ApiKeyOutcome,
    ProvisioningError,
    ProvisioningInvalid,
    ProvisioningResult,
    UserOutcome,
)

DEFAULT_HOST = "http://127.0.0.1:8000"


class Command(BaseCommand):
    help = (
        "Create or update one organization, its users, API keys, models and fields from a "
        "JSON provisioning file. Idempotent: running it twice changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the provisioning file (JSON)")
        output = parser.add_mutually_exclusive_group()
        output.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="print what a client needs (group key, API keys created, momCodes) as JSON",
        )
        output.add_argument(
            "--demo",
            action="store_true",
            help="print the demo credentials and a ready curl line (for `make run`)",
        )
        parser.add_argument(
            "--host", default=DEFAULT_HOST, help=f"server URL for --demo (default {DEFAULT_HOST})"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["file"]
        if options["as_json"] and options["demo"]:
            raise CommandError("--json and --demo are exclusive")
        host = options["host"].rstrip("/")
        if not host.startswith(("http://", "https://")):
            raise CommandError(f"--host {host!r} must start with http:// or https://")
        try:
            document = provisioning.provisioning_file_read(path)
            errors = provisioning.provisioning_validate(document)
            if options["demo"] and not errors:
                errors = _demo_errors(document)
            if errors:
                raise ProvisioningInvalid(errors)
            result = provisioning.provisioning_apply(document=document)
        except ProvisioningInvalid as invalid:
            raise CommandError(_refusal_text(path, invalid.errors)) from None

        if options["as_json"]:
            self.stdout.write(json.dumps(result.as_json(), indent=2))
        elif options["demo"]:
            self.stdout.write(_demo_text(result, document, host))
        else:
            self.stdout.write(_summary_text(result))


def _refusal_text(path: str, errors: list[ProvisioningError]) -> str:
    lines = [f"{path} was refused; nothing was changed:"]
    lines += [f"  {error.path or '(file)'}: {error.message}" for error in errors]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Human summary.


def _summary_text(result: ProvisioningResult) -> str:
    organization = result.organization
    lines = [
        f"Organization {organization.name!r}: {organization.status} "
        f"(group key {organization.group_key})"
    ]
    if organization.callback_secret:
        lines.append(
            f"  Callback secret: {organization.callback_secret} (shown once: store it now; "
            "the partner verifies callbacks with it)"
        )
    for user in result.users:
        lines.append(f"User {user.username} ({user.role}): {user.status}")
        lines += [f"  {_api_key_line(api_key)}" for api_key in user.api_keys]
    for model in result.models:
        identity = f"momCode {model.mom_code}" if model.mom_code else model.object_type
        line = f"Model {model.name!r} ({identity}): {model.status}"
        if model.fields_created:
            line += f"; fields created: {', '.join(model.fields_created)}"
        if model.fields_updated:
            line += f"; fields updated: {', '.join(model.fields_updated)}"
        lines.append(line)
    for destination in result.destinations:
        line = f"Destination {destination.name!r}: {destination.status}"
        if destination.secret:
            line += " (its signing secret is printed by --json, this once)"
        lines.append(line)
    lines.append("Done." if result.changed else "Nothing to change: already provisioned.")
    return "\n".join(lines)


def _api_key_line(api_key: ApiKeyOutcome) -> str:
    line = f"API key {api_key.name!r}: {api_key.status}"
    if api_key.status == "created" and not api_key.given:
        line += f"; key {api_key.key} (shown once: store it now)"
    return line


# ---------------------------------------------------------------------------------------
# --demo: credentials and a curl line a newcomer can paste.


def _demo_key_spec(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The first user of the file, with the first API key the file gives the value of."""
    for user in document.get("users") or []:
        for api_key in user.get("apiKeys") or []:
            if api_key.get("key"):
                return user, api_key
    return None


def _demo_errors(document: object) -> list[ProvisioningError]:
    assert isinstance(document, dict)
    if _demo_key_spec(document) is None:
        # Raw keys are never stored, so only a key the file gives can be printed on every run.
        return [
            ProvisioningError(
                "users",
                "--demo prints an API key on every run, so the file must give one: "
                "users[].apiKeys[].key (40 lowercase hex, a demo-only value)",
            )
        ]
    return []


def _demo_text(result: ProvisioningResult, document: object, host: str) -> str:
    assert isinstance(document, dict)  # a valid file (provisioning_validate) is an object
    found = _demo_key_spec(document)
    assert found is not None
    user_spec, key_spec = found
    user = next(u for u in result.users if u.username == user_spec["username"])
    group_key = result.organization.group_key
    body = json.dumps({"username": user.username, "apiKey": key_spec["key"], "cdpGKey": group_key})
    rows = [
        ("Username", user.username),
        ("Password", user_spec.get("password") or "(none: API access only)"),
        ("API key", f"{key_spec['key']}  ({key_spec['name']!r}; demo-only, public in the file)"),
        ("Group key", group_key),
        *_demo_model_rows(result),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = [
        f"Demo tenant {result.organization.name!r} "
        f"({'provisioned' if result.changed else 'already provisioned'}):",
        "",
        *(f"  {label.ljust(width)}{value}" for label, value in rows),
        "",
        f"Console: {host}/console/ (sign in with the username and password above)",
        "",
        f"Get a token (valid {settings.CDP_TOKEN_TTL_SECONDS} s):",
        "",
        f"  curl -s -X POST {host}/api/accounts/authen "
        f"-H 'Content-Type: application/json' -d '{body}'",
        "",
        *_demo_ingest_lines(result, key_spec["key"], body, host),
        _other_users_note(result.users, user),
    ]
    return "\n".join(line for line in lines if line is not None)


def _demo_ingest_lines(
    result: ProvisioningResult, raw_key: str, authen_body: str, host: str
) -> list[str]:
    """A paste-ready shell snippet: get a token, then ingest a new record that fires the
    first User Event of the file (the demo file's filter passes for the sample record)."""
    custom = next((m for m in result.models if m.mom_code), None)
    event = result.user_events[0] if result.user_events else None
    if custom is None or event is None:
        return [
            f"Then POST records to {host}/dhub-i/api/v1.0/ingest with headers TOKEN and API_KEY."
        ]
    ingest_body = json.dumps(
        {
            "objectType": "custom-model",
            "source": "CRM",
            "jeConfigId": event.config_id,
            "jeEventKey": event.event_key,
            "entries": [
                {
                    "momCode": custom.mom_code,
                    "refId": "R-DEMO-{now}",
                    "customerId": "C-DEMO-1",
                    "customFieldTexts": {"customField01": "gold"},
                    "customFieldLongs": {"customFieldLong01": 150},
                }
            ],
        }
    )
    token = (
        f"TOKEN=$(curl -s -X POST {host}/api/accounts/authen -H 'Content-Type: application/json'"
        f" -d '{authen_body}'"
        " | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"token\"])')"
    )
    return [
        f"User Event {event.ref!r}:  jeConfigId {event.config_id}",
        f"{' ' * (len(event.ref) + 14)}jeEventKey {event.event_key}",
        "",
        "Ingest a record that fires it (paste both lines), then list the events:",
        "",
        f"  {token}",
        f"  curl -s -X POST {host}/dhub-i/api/v1.0/ingest -H 'Content-Type: application/json'"
        f" -H \"TOKEN: $TOKEN\" -H 'API_KEY: {raw_key}' -d '{ingest_body}'"
        # A fresh refId on every paste (a Created User Event fires once per record).
        .replace("{now}", "'\"$(date +%s)\"'"),
        f"  curl -s {host}/dhub-i/api/v1.0/user-events"
        f" -H \"TOKEN: $TOKEN\" -H 'API_KEY: {raw_key}'",
    ]


def _demo_model_rows(result: ProvisioningResult) -> list[tuple[str, str]]:
    return [
        (
            "momCode" if model.mom_code else "objectType",
            f"{model.mom_code or model.object_type}  ({model.name})",
        )
        for model in result.models
    ]


def _other_users_note(users: list[UserOutcome], shown: UserOutcome) -> str | None:
    others = [u.username for u in users if u is not shown]
    return f"Other users in the file: {', '.join(others)}." if others else None
