import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
django.setup(set_prefix=False)

from cdp.handler import CdpWSGIHandler  # noqa: E402 (after setup, as get_wsgi_application)

application = CdpWSGIHandler()
