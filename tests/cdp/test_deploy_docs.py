"""The production recipe in docs/deploy.md is what operators copy: its nginx server block
must pass the client's address the way the application trusts it, and what it says of
Redis must hold for the shared store's script."""

from __future__ import annotations

import re
from pathlib import Path

from cdp import shared_store

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def _nginx_locations() -> dict[str, str]:
    text = DEPLOY.read_text()
    block = text[text.index("```nginx") : text.index("```", text.index("```nginx") + 8)]
    return dict(re.findall(r"location ([^{]+)\{(.*?)\n    \}", block, re.S))


def test_every_proxied_location_sets_the_forwarded_headers():
    """nginx gives a location that sets proxy_set_header lines of its own none of the
    server's: each must set X-Forwarded-For itself, or a client's own header would pass
    as nginx's (CDP_TRUSTED_PROXIES=1)."""
    proxied = {where: body for where, body in _nginx_locations().items() if "proxy_pass" in body}

    assert set(proxied) == {"/ ", "= /api/accounts/authen "}
    for where, body in proxied.items():
        assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in body, where
        assert "proxy_set_header X-Forwarded-Proto $scheme;" in body, where


def test_the_shared_store_script_runs_on_the_redis_the_docs_name():
    """The docs say Redis 6: the script uses no option added in Redis 7 (EXPIRE NX/XX/GT/LT,
    SET GET or KEEPTTL…)."""
    assert "Redis 6 or later" in DEPLOY.read_text()
    script = shared_store._EXCHANGE_LUA
    calls = re.findall(r"redis\.call\(([^)]*)\)", script)
    assert {c.split(",")[0].strip("' ") for c in calls} == {"SET", "GET", "INCR", "EXPIRE"}
    assert not re.search(r"'(NX|XX|GT|LT|KEEPTTL|GET)'", script.replace("'GET', KEYS", ""))
