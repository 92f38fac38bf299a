"""Checks of request parts: namespaces, keys, ETags, TTLs, content types.

Each raises a :class:`Problem` naming what is wrong and how to fix it.
"""

from __future__ import annotations

import math
import re

from galerakv.backend.keys import CONTENT_TYPE_RE, key_fault, key_size
from galerakv.config import NAMESPACE_RE, LimitsSettings
from galerakv.server.problems import Problem

_ETAG_RE = re.compile(r'^"([\x21\x23-\x7e]+)"$')
_SECONDS_RE = re.compile(r"[0-9]{1,20}(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?")  # a JSON number, ASCII


def namespace(ns: str) -> str:
    if not NAMESPACE_RE.match(ns):
        raise Problem("invalid_namespace",
                      f"namespace {ns[:64]!r} is not valid: use 1-128 letters, digits, '.', '_' or "
                      "'-', starting with a letter or digit", namespace=ns[:128])
    return ns


def key(k: str, limits: LimitsSettings) -> str:
    fault = key_fault(k, limits.max_key_bytes)
    if fault == "empty":
        raise Problem("invalid_key", "the key is empty; put the key after /kv/ in the path")
    if fault == "too_large":
        size = key_size(k)
        raise Problem("key_too_large",
                      f"the key is {size} bytes; the limit is {limits.max_key_bytes} bytes "
                      "(limits.max_key_bytes)", limit=limits.max_key_bytes, size=size)
    if fault == "nul":
        raise Problem("invalid_key", "the key contains a NUL character (%00), which is not allowed")
    if fault == "not_unicode":
        raise Problem("invalid_key", "the key is not valid Unicode text")
    return k


def value_size(size: int, limits: LimitsSettings) -> None:
    if size > limits.max_value_bytes:
        raise Problem("value_too_large",
                      f"the value is {size} bytes; the limit is {limits.max_value_bytes} bytes "
                      "(limits.max_value_bytes)", limit=limits.max_value_bytes, size=size)


def content_type(ct: str | None) -> str:
    if ct is None or ct == "":
        return "application/octet-stream"
    if not CONTENT_TYPE_RE.match(ct):
        raise Problem("invalid_header",
                      "Content-Type must be printable ASCII of at most 255 characters")
    return ct


def ttl(raw: object, limits: LimitsSettings, where: str = "ttl") -> float | None:
    """Seconds from a query string or JSON value; None when absent."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        seconds = math.nan
    elif isinstance(raw, int | float):
        seconds = float(raw)
    elif isinstance(raw, str):  # a JSON number in ASCII: float() alone would take "1_0", " 5" or "\u0661"
        seconds = float(raw) if _SECONDS_RE.fullmatch(raw) else math.nan
    else:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0 or seconds > limits.max_ttl_seconds:
        raise Problem("invalid_query" if where == "ttl" else "invalid_operation",
                      f"{where} must be a number of seconds greater than 0 and at most "
                      f"{limits.max_ttl_seconds} (limits.max_ttl_seconds), not {str(raw)[:32]!r}",
                      parameter=where)
    return seconds


def parse_etag(raw: str, header: str) -> str:
    """The version inside one strong ETag ``"..."``."""
    match = _ETAG_RE.match(raw.strip())
    if not match:
        raise Problem("invalid_etag",
                      f"{header} must be a quoted ETag as returned in the ETag header, such as "
                      f'"17", or *; got {raw[:64]!r}', header=header)
    return match.group(1)


def if_match(raw: str | None) -> str | None:
    """The version If-Match requires, ``*`` for any, or None when absent."""
    if raw is None:
        return None
    raw = raw.strip()
    if raw == "*":
        return "*"
    if not _ETAG_RE.match(raw) and "," in raw:
        raise Problem("invalid_etag", "If-Match takes exactly one ETag (or *), not a list",
                      header="If-Match")
    return parse_etag(raw, "If-Match")


def if_none_match_put(raw: str | None) -> bool:
    if raw is None:
        return False
    if raw.strip() != "*":
        raise Problem("invalid_etag",
                      "on PUT, If-None-Match only takes * (create only if the key does not exist)",
                      header="If-None-Match")
    return True


def if_none_match_get(raw: str | None) -> tuple[bool, set[str]]:
    """(any, versions) from If-None-Match on GET/HEAD."""
    if raw is None:
        return False, set()
    raw = raw.strip()
    if raw == "*":
        return True, set()
    versions = set()
    for part in raw.split(","):
        part = part.strip()
        if part.startswith("W/"):  # weak comparison is allowed for If-None-Match
            part = part[2:]
        versions.add(parse_etag(part, "If-None-Match"))
    return False, versions


def etag(version: str) -> str:
    return f'"{version}"'


_REVISION_RE = re.compile(r"[0-9]{1,19}")


def revision(raw: str, what: str, code: str) -> int:
    """A revision in a query parameter or header (``code``: the problem when it is not one):
    ASCII digits only, at most 2**63 - 1."""
    if not _REVISION_RE.fullmatch(raw) or int(raw) >= 1 << 63:
        raise Problem(code,
                      f"{what} must be a revision: a whole number from 0, such as the id of the last "
                      f"event received; got {raw[:32]!r}", parameter=what)
    return int(raw)
