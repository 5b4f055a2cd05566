"""Generated identifiers and their formats (DESIGN §4, §7). All random parts come from `secrets`."""

import re
import secrets
import string

UPPER_ALNUM = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits

# `\Z`, not `$`: `$` also matches before a trailing newline, which would let "…\n" through.
GROUP_KEY_RE = re.compile(r"^[0-9a-f]{32}\Z")
MOM_CODE_RE = re.compile(r"^M-[A-Z0-9]{5}-O-[A-Z0-9]{5}-M\Z")
CDP_ID_RE = re.compile(r"^[A-Za-z0-9]{20}\Z")


def random_string(alphabet: str, length: int) -> str:
    """`length` characters drawn uniformly from `alphabet`, from the OS's CSPRNG.

    One `secrets.token_bytes` call per batch of bytes, rejection-sampled so every character
    is equally likely: a tenth of the cost of `secrets.choice` per character, which shows
    on the ingest hot path (a cdpId per new record).
    """
    size = len(alphabet)
    usable = 256 - 256 % size
    chosen: list[str] = []
    while len(chosen) < length:
        for byte in secrets.token_bytes(2 * length):
            if byte < usable:
                chosen.append(alphabet[byte % size])
                if len(chosen) == length:
                    break
    return "".join(chosen)


def group_key_generate() -> str:
    return secrets.token_hex(16)


def mom_code_generate() -> str:
    return f"M-{random_string(UPPER_ALNUM, 5)}-O-{random_string(UPPER_ALNUM, 5)}-M"


def cdp_id_generate() -> str:
    return random_string(ALNUM, 20)
