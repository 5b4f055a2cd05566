"""`manage.py erase --org GROUPKEY [--customer-id ID] [--email EMAIL] [--phone PHONE]
[--suppress] [--json]`: erase a person from an organization (ingestion/erasure.py), as the
erasure endpoint does; `--lift ERASUREID` lifts an erasure's suppression instead."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp.errors import ApiError
from cdp.models import ErasureRequest, Organization
from ingestion.erasure import (
    IDENTIFIER_ARGUMENTS,
    erasure_answer,
    erasure_order_parse,
    erasure_run,
    suppression_lift,
)

OPERATOR = "operator (manage.py erase)"


class Command(BaseCommand):
    help = (
        "Erase every record (of every model), history entry and user event of an "
        "organization that carries the given customerId, email (case-insensitively) or "
        "phone; --suppress refuses later entries carrying them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", metavar="GROUPKEY", required=True)
        parser.add_argument("--customer-id")
        parser.add_argument("--email")
        parser.add_argument("--phone")
        parser.add_argument("--suppress", action="store_true")
        parser.add_argument("--lift", metavar="ERASUREID", help="lift this erasure's suppression")
        parser.add_argument("--json", action="store_true", help="print the answer as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            organization = Organization.objects.get(group_key=options["org"])
        except Organization.DoesNotExist:
            raise CommandError(f"Unknown organization group key: {options['org']}") from None
        if options["lift"]:
            self._lift(organization, options["lift"])
            return
        body = {
            name: options[option]
            for name, option in IDENTIFIER_ARGUMENTS.items()
            if options[option] is not None
        }
        try:
            order = erasure_order_parse({**body, "suppress": options["suppress"]})
        except ApiError as error:
            raise CommandError(
                f"{error.message} (give --customer-id, --email or --phone)"
            ) from None
        erasure = erasure_run(organization=organization, order=order, requested_by=OPERATOR)
        if options["json"]:
            self.stdout.write(json.dumps(erasure_answer(erasure)))
            return
        self.stdout.write(
            f"Erasure {erasure.erasure_id}: {erasure.records} records, {erasure.history} "
            f"history entries and {erasure.events} events erased; "
            f"{erasure.callbacks} callbacks and {erasure.deliveries} deliveries changed"
            + ("; suppressed." if erasure.suppress else ".")
        )

    def _lift(self, organization: Organization, erasure_id: str) -> None:
        erasure = ErasureRequest.objects.filter(
            organization=organization, erasure_id=erasure_id
        ).first()
        if erasure is None:
            raise CommandError(f"Unknown erasure in this organization: {erasure_id}")
        if not suppression_lift(erasure=erasure, lifted_by=OPERATOR):
            raise CommandError(f"Erasure {erasure_id} has no suppression to lift")
        self.stdout.write(f"Lifted the suppression of erasure {erasure_id}.")
