"""What a key may be, key ranges and listing cursors, shared by every backend.

Keys are ordered by code point (the order of their UTF-8 bytes). A prefix
covers the half-open range ``[prefix, successor(prefix))``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from galerakv.backend.base import Entry, ListPage, ListQuery
from galerakv.errors import InvalidRequest

_MAX_CP = 0x10FFFF

KeyFault = Literal["empty", "too_large", "nul", "not_unicode"]

# A content type as stored: printable ASCII, 1 to 255 characters, not starting with a space.
CONTENT_TYPE_RE = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,254}$")


def key_size(key: str) -> int:
    """The key's length in UTF-8 bytes (a lone surrogate counted as its 3 bytes)."""
    return len(key.encode("utf-8", "surrogatepass"))


def key_fault(key: str, max_bytes: int) -> KeyFault | None:
    """Why no store takes ``key``, or None when it is a valid key: empty, longer than
    ``max_bytes`` UTF-8 bytes (``limits.max_key_bytes``), holding a NUL, or not valid
    Unicode (a lone surrogate). The one rule of the server's paths and bodies and of import."""
    if not key:
        return "empty"
    if key_size(key) > max_bytes:
        return "too_large"
    if "\x00" in key:
        return "nul"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return "not_unicode"
    return None


def successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``.

    None when there is no such string (the prefix is empty or all U+10FFFF).
    """
    chars = list(prefix)
    while chars:
        cp = ord(chars[-1])
        if cp < _MAX_CP:
            nxt = cp + 1
            if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be stored as UTF-8
                nxt = 0xE000
            chars[-1] = chr(nxt)
            return "".join(chars)
        chars.pop()
    return None


def encode_cursor(key: str, inclusive: bool) -> str:
    """An opaque cursor: where the next page starts."""
    raw = json.dumps({"k": key, "i": int(inclusive)}, ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, bool]:
    """(start key, inclusive) from a cursor made by :func:`encode_cursor`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode())
        key, inclusive = data["k"], data["i"]
        if not isinstance(key, str) or inclusive not in (0, 1):
            raise ValueError
        key.encode()  # no lone surrogates
    except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error) as exc:
        raise InvalidRequest(
            "cursor is not one galerakv returned; pass the next_cursor of the previous page "
            "unchanged, or omit it to start from the beginning", "invalid_cursor"
        ) from exc
    return key, bool(inclusive)


# fetch(start, inclusive, upper, count) -> up to ``count`` live entries with
# start <(=) key < upper (no upper bound when None), in key order.
Fetch = Callable[[str, bool, "str | None", int], Awaitable[Sequence[Entry]]]


VALUE_ROWS_PER_FETCH = 32  # rows with values read at a time when a page has a byte budget


async def paginate(q: ListQuery, fetch: Fetch) -> ListPage:
    """One page of a listing, for any backend that can fetch a key range in order.

    With a delimiter, a whole group of keys under one common prefix costs one
    range fetch and one seek past it, so a page costs about ``limit`` index
    seeks however large the namespace is.
    """
    start, inclusive = q.prefix, True
    if q.cursor is not None:
        ckey, cinc = decode_cursor(q.cursor)
        if ckey > start or (ckey == start and not cinc):
            start, inclusive = ckey, cinc
    upper = successor(q.prefix)
    entries: list[Entry] = []
    prefixes: list[str] = []
    budget = None if q.keys_only else q.max_bytes
    while True:
        want = q.limit - len(entries) - len(prefixes)
        if want <= 0:
            break
        # with values and a byte budget, rows come a few at a time: the page may end early
        batch = want if budget is None else min(want, VALUE_ROWS_PER_FETCH)
        rows = await fetch(start, inclusive, upper, batch + 1)
        jumped = spent = False
        for entry in rows[:batch]:
            if q.delimiter:
                cut = entry.key.find(q.delimiter, len(q.prefix))
                if cut >= 0:
                    common = entry.key[: cut + len(q.delimiter)]
                    prefixes.append(common)
                    nxt = successor(common)
                    if nxt is None or (upper is not None and nxt >= upper):
                        return ListPage(tuple(entries), tuple(prefixes), None)
                    start, inclusive, jumped = nxt, True, True
                    break
            entries.append(entry)
            start, inclusive = entry.key, False
            if budget is not None:
                budget -= len(entry.value)
                if budget <= 0:  # at least one entry per page, however large
                    spent = True
                    break
        if jumped:
            continue
        if len(rows) <= batch and not spent:
            return ListPage(tuple(entries), tuple(prefixes), None)
        if spent or batch == want:
            break
    more = await fetch(start, inclusive, upper, 1)
    return ListPage(tuple(entries), tuple(prefixes), encode_cursor(start, inclusive) if more else None)
