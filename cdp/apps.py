from django.apps import AppConfig


class CdpConfig(AppConfig):
    verbose_name = "Console"
    name = "cdp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from cdp import checks  # noqa: F401 (registers the system checks)
        from cdp.models import DataModel, FieldDefinition
        from cdp.schema_cache import schema_cache_watch
        from cdp.token_cache import token_cache_connect

        token_cache_connect()
        schema_cache_watch(DataModel, FieldDefinition)

        from datetime import timedelta

        from cdp import tasks
        from cdp.schedules import schedule_register

        schedule_register(name="purge_tokens", task=tasks.purge_tokens, every=timedelta(days=1))
        schedule_register(
            name="prune_task_results", task=tasks.prune_task_results, every=timedelta(hours=1)
        )

        # Each app's provisioning.py registers its sections of the provisioning file, found
        # the way admin.autodiscover() finds admin.py. At start-up rather than on first use:
        # a broken or clashing section fails `manage.py check`, not the operator's first run.
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("provisioning")
