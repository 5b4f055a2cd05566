from django.apps import AppConfig


class CdpConfig(AppConfig):
    verbose_name = "Console"
    name = "cdp"
    default_auto_field = "django.db.models.BigAutoField"
