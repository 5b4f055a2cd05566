"""The journeys app's Console pages, one module per job (Django's admin autodiscovery
imports this package, and each module registers its ModelAdmins on the Console):

- `user_event_form`: the User Event form and its row editors' data;
- `user_events`: the User Event pages (list, add, change, preview, enable/disable);
- `event_log`: the Event log.
"""

from journeys.admin import event_log, user_events  # noqa: F401 (each registers its pages)
