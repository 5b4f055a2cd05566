"""How the schema splits once PostgreSQL grows into Citus (docs/scale-out.md), in one place.

- **Tenant tables**: every table with an `organization_id`. Distributed by it, colocated.
  Their primary keys are (organization_id, id), their unique constraints and indexes all
  hold organization_id, and their foreign keys to one another are
  (organization_id, x_id) → (organization_id, id) (ingestion's migration 0009;
  tests/test_distribution_rules.py checks every rule on the migrated schema).
- **Reference tables**: small, copied to every node, so that a tenant table may point at
  them and a query may join them on any shard: the organizations, and the users with the
  tables Django's authentication joins to them.
- **Local tables**: the coordinator's alone, never joined with a tenant table in a query:
  Django's bookkeeping, sessions and the Console's admin log, the sign-in lockouts, and
  the task engine's queue with the schedules.

A new table is one of the three: a tenant table when it holds a tenant's data (it needs an
`organization_id`, and the rules test then holds it to the rules), else it is named here.
"""

REFERENCE_TABLES = (
    "cdp_organization",
    "auth_user",
    "auth_group",
    "auth_permission",
    "auth_user_groups",
    "auth_user_user_permissions",
    "auth_group_permissions",
    "django_content_type",
)

LOCAL_TABLES = (
    "django_migrations",
    "django_session",
    "django_admin_log",
    "axes_accessattempt",
    "axes_accessattemptexpiration",
    "axes_accessfailurelog",
    "axes_accesslog",
    # The task engine's queue and the schedules' rows: read by the workers, which run
    # against the coordinator; a task names its organization in its arguments.
    "django_tasks_database_dbtaskresult",
    "cdp_scheduledrun",
)

DISTRIBUTION_COLUMN = "organization_id"
