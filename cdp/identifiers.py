"""Generated identifiers and their formats. All random parts come from `secrets`."""

import re
import secrets
import string

UPPER_ALNUM = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits

# `\Z`, not `$`: `$` also matches before a trailing newline, which would let "…\n" through.
GROUP_KEY_RE = re.compile(r"^[0-9a-f]{32}\Z")
MOM_CODE_RE = re.compile(r"^M-[A-Z0-9]{5}-O-[A-Z0-9]{5}-M\Z")
CDP_ID_RE = re.compile(r"^[A-Za-z0-9]{20}\Z")


def _sampler(alphabet: str) -> tuple[bytes, bytes]:
    """A byte translation for `alphabet`: the bytes below the largest multiple of its
    size map onto it uniformly, the others are deleted (rejection sampling, in C)."""
    size = len(alphabet)
    usable = 256 - 256 % size
    table = bytes(ord(alphabet[b % size]) if b < usable else 0 for b in range(256))
    return table, bytes(range(usable, 256))


_SAMPLERS: dict[str, tuple[bytes, bytes]] = {}


def random_strings(alphabet: str, length: int, count: int) -> list[str]:
    """`count` strings as `random_string` draws them, from one read of the CSPRNG."""
    sampler = _SAMPLERS.get(alphabet)
    if sampler is None:
        sampler = _SAMPLERS.setdefault(alphabet, _sampler(alphabet))
    table, rejected = sampler
    needed = length * count
    chosen = b""
    while len(chosen) < needed:
        # 1/32 of the bytes are rejected for a 62-letter alphabet: ask for a little more.
        chosen += secrets.token_bytes(needed + needed // 16 + 8).translate(table, rejected)
    text = chosen[:needed].decode("ascii")
    return [text[i : i + length] for i in range(0, needed, length)]


def random_string(alphabet: str, length: int) -> str:
    """`length` characters drawn uniformly from `alphabet` (ASCII), from the OS's CSPRNG.

    Random bytes are mapped onto the alphabet by one `bytes.translate`, which also drops
    the few bytes that would bias it: a fraction of the cost of `secrets.choice` per
    character, which shows on the ingest hot path (a cdpId per new record).
    """
    return random_strings(alphabet, length, 1)[0]


def group_key_generate() -> str:
    return secrets.token_hex(16)


def mom_code_generate() -> str:
    return f"M-{random_string(UPPER_ALNUM, 5)}-O-{random_string(UPPER_ALNUM, 5)}-M"


def cdp_id_generate() -> str:
    return random_string(ALNUM, 20)


def cdp_ids_generate(count: int) -> list[str]:
    return random_strings(ALNUM, 20, count)
