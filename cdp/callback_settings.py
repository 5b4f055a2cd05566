"""An organization's callback settings: the URL (with its SSRF guard) and the signing secret.

The secret is a shared HMAC key, not a credential we verify: the worker must be able to
sign with it, so it is stored as generated (unlike API keys and tokens, of which only a
digest is kept). It is returned once, by the service call that generated it, and no
response, log line or Console page shows it again (docs/callbacks.md).

The SSRF guard refuses URLs whose host resolves to an address that is not publicly
routable, unless `CDP_CALLBACK_ALLOW_PRIVATE` is on (development and tests). It runs when
the URL is set and again before every delivery, since DNS answers change; the delivery
then connects to the very address it checked (ingestion/callbacks.py), so a second,
different DNS answer cannot slip a private address in between.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from cdp.models import Organization

CALLBACK_URL_MAX_LENGTH = 500
CALLBACK_SECRET_BYTES = 32


class CallbackUrlRefused(ValueError):
    """The URL is malformed, does not resolve, or resolves to a refused address."""


@dataclass(frozen=True)
class CallbackTarget:
    """Where a callback goes: the URL's parts and the addresses checked for it."""

    scheme: str
    host: str
    port: int
    path: str  # with the query string, as sent on the request line
    addresses: tuple[str, ...]


def callback_url_syntax_error(url: str) -> str | None:
    """Why `url` cannot be a callback URL, judged on its text alone; None when it can."""
    if len(url) > CALLBACK_URL_MAX_LENGTH:
        return f"is longer than {CALLBACK_URL_MAX_LENGTH} characters"
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        return f"is not a valid URL ({error})"
    if parts.scheme not in ("http", "https"):
        return "must start with https:// (or http://)"
    if not parts.hostname:
        return "must name a host"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials (user:password@)"
    if port == 0:
        return "must not use port 0"
    return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and a network may route to: IPv4-mapped
    (::ffff:a.b.c.d), 6to4 (2002:aabb:ccdd::), NAT64 (64:ff9b::a.b.c.d) or IPv4-compatible
    (::a.b.c.d). (Teredo's 2001::/32 is non-public as a whole.)"""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _address_refusal(address: str) -> str | None:
    """What kind of non-public address `address` is, or None when it is public. An IPv6
    address that embeds an IPv4 one is judged by the IPv4 address too: a public-looking
    6to4 or NAT64 address may lead to a private host."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone index
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and (kind := _address_refusal(str(embedded))) is not None:
            return kind
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
    for kind, flagged in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        # Shared address space (100.64.0.0/10) and the like: not private, not public either.
        ("non-public", not ip.is_global),
    ):
        if flagged:
            return kind
    return None


def callback_target_resolve(url: str, *, allow_private: bool | None = None) -> CallbackTarget:
    """Check `url` and resolve its host; raises CallbackUrlRefused.

    Every address the host resolves to must be public unless `allow_private` (default:
    the `CDP_CALLBACK_ALLOW_PRIVATE` setting) is true: one private answer among public
    ones is enough to refuse, since the connection could land on any of them.
    """
    problem = callback_url_syntax_error(url)
    if problem is not None:
        raise CallbackUrlRefused(f"The callback URL {problem}.")
    if allow_private is None:
        allow_private = settings.CDP_CALLBACK_ALLOW_PRIVATE
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        # An internationalized name goes on the wire (DNS, Host header) in its ASCII form.
        host = (parts.hostname or "").encode("idna").decode("ascii")
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:
        raise CallbackUrlRefused(
            f"The callback host {parts.hostname} is not a valid name."
        ) from None
    except socket.gaierror as error:
        raise CallbackUrlRefused(f"The callback host {host} does not resolve ({error}).") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise CallbackUrlRefused(f"The callback host {host} does not resolve.")
    if not allow_private:
        for address in addresses:
            kind = _address_refusal(address)
            if kind is not None:
                raise CallbackUrlRefused(
                    f"The callback host {host} resolves to {address}, a {kind} address: "
                    "callbacks go to public addresses only."
                )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return CallbackTarget(parts.scheme, host, port, path, addresses)


def callback_url_check(url: str) -> None:
    """Raise CallbackUrlRefused unless `url` may be configured now.

    With `CDP_CALLBACK_ALLOW_PRIVATE` on, only the text is judged: a development or test
    URL need not resolve yet. Otherwise the host must resolve, to public addresses only.
    """
    if settings.CDP_CALLBACK_ALLOW_PRIVATE:
        problem = callback_url_syntax_error(url)
        if problem is not None:
            raise CallbackUrlRefused(f"The callback URL {problem}.")
        return
    callback_target_resolve(url, allow_private=False)


def callback_secret_generate() -> str:
    return secrets.token_hex(CALLBACK_SECRET_BYTES)


def callback_settings_set(
    *, organization: Organization, url: str, enabled: bool, now: datetime | None = None
) -> str | None:
    """Set the organization's callback URL and switch.

    Returns the new signing secret when this call generated one (the first time the
    organization gets a URL), else None: the caller shows it once, and nothing can read
    it back later. An empty `url` removes the URL (and needs `enabled` false). Raises
    ValidationError naming `url` or `enabled`.
    """
    url = url.strip()
    if enabled and not url:
        raise ValidationError({"enabled": "Set a callback URL before turning callbacks on."})
    # An unchanged URL being switched off is not judged again: an organization whose
    # partner host stopped resolving (or now resolves privately) can still turn it off.
    if url and (enabled or url != organization.callback_url):
        try:
            callback_url_check(url)
        except CallbackUrlRefused as refused:
            raise ValidationError({"url": str(refused)}) from None
    changed = []
    if organization.callback_url != url:
        organization.callback_url = url
        changed.append("callback_url")
    if organization.callback_enabled != enabled:
        organization.callback_enabled = enabled
        changed.append("callback_enabled")
    secret = None
    if url and not organization.callback_secret:
        secret = _secret_assign(organization, now)
        changed += ["callback_secret", "callback_secret_set_at"]
    if changed:
        organization.save(update_fields=changed)
    return secret


def callback_secret_rotate(*, organization: Organization, now: datetime | None = None) -> str:
    """Replace the signing secret and return the new one (shown once).

    Every delivery from now on, including retries of earlier requests, is signed with the
    new secret: the partner should accept both for the few minutes it takes to switch.
    """
    secret = _secret_assign(organization, now)
    organization.save(update_fields=["callback_secret", "callback_secret_set_at"])
    return secret


def _secret_assign(organization: Organization, now: datetime | None) -> str:
    secret = callback_secret_generate()
    organization.callback_secret = secret
    organization.callback_secret_set_at = now or timezone.now()
    return secret
