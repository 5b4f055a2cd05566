"""Settings refuse to start in production without a SECRET_KEY (cdp/settings.py).

Each case imports the settings in a fresh interpreter, because this process already
holds them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEV_SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"

# Settings also read the project's `.env`; one that sets SECRET_KEY (a developer's machine)
# makes the environment impossible to clear from here. CI has none.
_dotenv = PROJECT_DIR / ".env"
needs_no_dotenv_secret = pytest.mark.skipif(
    _dotenv.exists()
    and re.search(r"^\s*SECRET_KEY\s*=\s*\S", _dotenv.read_text(), re.MULTILINE) is not None,
    reason=".env sets SECRET_KEY",
)


def import_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run(
        [sys.executable, "-c", "import cdp.settings as s; print(s.DEBUG, s.SECRET_KEY)"],
        cwd=PROJECT_DIR,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_no_dotenv_secret
def test_missing_secret_key_with_debug_off_is_improperly_configured():
    result = import_settings(DEBUG="false")

    assert result.returncode != 0
    assert "django.core.exceptions.ImproperlyConfigured: SECRET_KEY is not set." in result.stderr
    assert result.stdout == ""


@needs_no_dotenv_secret
def test_missing_debug_means_debug_off_and_needs_a_secret_key():
    result = import_settings()

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set." in result.stderr


@needs_no_dotenv_secret
def test_blank_secret_key_with_debug_off_is_improperly_configured():
    result = import_settings(DEBUG="false", SECRET_KEY="")

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set." in result.stderr


def test_secret_key_from_the_environment_is_used():
    result = import_settings(DEBUG="false", SECRET_KEY="a-long-random-production-secret")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "a-long-random-production-secret"]


@needs_no_dotenv_secret
def test_debug_on_falls_back_to_the_development_key():
    result = import_settings(DEBUG="true")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", DEV_SECRET_KEY]


@needs_no_dotenv_secret
def test_manage_py_says_what_is_missing_without_a_traceback():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "manage.py: SECRET_KEY is not set. Set SECRET_KEY in the environment "
        "(or DEBUG=true for local development only)."
    )
    assert "Traceback" not in result.stderr


def test_redis_gets_socket_timeouts_unless_the_url_sets_them():
    script = (
        "import cdp.settings as s, json;"
        " print(json.dumps(s.CACHES['default'].get('OPTIONS', {}), sort_keys=True))"
    )

    def options(**env: str) -> str:
        clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DEBUG": "true", **env}
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=PROJECT_DIR,
            env=clean_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert options(REDIS_URL="redis://127.0.0.1:6379/0") == (
        '{"socket_connect_timeout": 2.0, "socket_timeout": 2.0}'
    )
    assert options(REDIS_URL="redis://127.0.0.1:6379/0", REDIS_TIMEOUT="0.5") == (
        '{"socket_connect_timeout": 0.5, "socket_timeout": 0.5}'
    )
    assert options() == "{}"  # local memory: no sockets
