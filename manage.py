#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        # A missing setting (SECRET_KEY, most often) is the operator's to fix: say which,
        # without a traceback.
        sys.exit(f"manage.py: {error}")


if __name__ == "__main__":
    main()
