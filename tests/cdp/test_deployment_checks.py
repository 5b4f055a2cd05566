"""Production settings are fast and safe without tuning: the system check refuses a
per-process cache when DEBUG is off, connections persist by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks

from cdp.checks import shared_cache_check

PROJECT_DIR = Path(__file__).resolve().parents[2]
LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/15",
    }
}


def test_a_per_process_cache_is_refused_when_debug_is_off(settings):
    settings.DEBUG, settings.CACHES = False, LOCMEM

    [error] = shared_cache_check(None)

    assert error.id == "cdp.E001"
    assert "LocMemCache" in error.msg and "CACHE_URL" in error.hint
    assert any(e.id == "cdp.E001" for e in run_checks())


@pytest.mark.parametrize(
    ("debug", "caches"), [(True, LOCMEM), (False, REDIS)], ids=["debug on", "shared cache"]
)
def test_development_or_a_shared_cache_passes(settings, debug, caches):
    settings.DEBUG, settings.CACHES = debug, caches

    assert shared_cache_check(None) == []


def _settings_of(**env: str) -> str:
    code = "import cdp.settings as s; d = s.DATABASES['default']; print(d['CONN_MAX_AGE'])"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_DIR,
        env={"PATH": os.environ.get("PATH", ""), "SECRET_KEY": "x", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_connections_persist_by_default_in_production():
    assert _settings_of(DEBUG="false") == "60"
    assert _settings_of(DEBUG="true") == "0"  # runserver: a thread per request
    assert _settings_of(DEBUG="false", CONN_MAX_AGE="5") == "5"
