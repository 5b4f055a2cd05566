"""The core's Console pages, one module per job. `admin.autodiscover()` imports this
package, and so registers them on the Console (`cdp.console.console_site`).

The apps' parts of these pages (a model's User Events and Data Ingestion API tabs, the
callback deliveries beside an organization's callback settings) are not here: each app
registers them from its own modules (ConsoleSite.register_panel), so the core imports no
app."""

from cdp.admin import api_keys, data_models, organizations, records

__all__ = ["api_keys", "data_models", "organizations", "records"]
