"""Settings for the test suite: the project's settings with a test-only secret key, so a
bare `pytest` works without DEBUG. Everything else comes from the environment as usual
(DATABASE_URL selects PostgreSQL in CI)."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-any-deployment")

from cdp.settings import *  # noqa: F403

# Test users need no slow password hashing.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests send callbacks to a server on 127.0.0.1 and configure example URLs that do not
# resolve; the SSRF guard itself is tested with this turned off (tests/ops).
CDP_CALLBACK_ALLOW_PRIVATE = True
# Backoff waits exact, so tests can assert them; the jitter has a test of its own.
CDP_CALLBACK_BACKOFF_JITTER = 0.0

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    import tempfile

    # A file, not Django's shared in-memory database: the concurrency tests write from
    # several threads, as a server's requests do, which needs SQLite's file locking (the
    # busy timeout and IMMEDIATE transactions of the settings) rather than shared-cache
    # table locks, which fail at once.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"cdp-test-{os.getpid()}.sqlite3")
    }
