"""Compare the output a document shows with the output a command printed.

The docs show what a reader sees on a fresh SQLite store; the same commands
on a Galera cluster, or a minute later, print other numbers in a few places.
``mismatch(shown, printed)`` is None when they agree after this normalisation,
else the reason:

- **Volatile numbers** match any number, on both sides: ETags (``"12"`` in
  headers and text, ``\\"12\\"`` inside JSON strings: counters on SQLite, large
  numbers on Galera), revisions (``x-galerakv-revision: 3``, ``from revision
  3``, an event's ``id: 3``; in JSON the members ``revision``,
  ``compact_revision``, ``feed_revision``) and expiry times (``expires_at``,
  ``x-galerakv-expires-at``: now plus the TTL). Nothing else does: a status, a
  size or a limit must be the one shown.
- **``...``** is a wildcard: inside a line, for any text within that line (at
  its end: the rest of it); on a line of its own, for any number of lines; in
  JSON, for any text inside a string, any value after ``:``, more members of
  an object, and (as the last element) more elements of an array.
- **HTTP answers** (``curl -i``: shown output starting with ``HTTP/``): the
  status line must be equal; every header shown must be in the answer, in
  that order, with its value (names in any case); the answer may have more
  (date, server, content-length), which the docs leave out. The body is
  compared when the docs show one, after the blank line.
- **JSON** (shown output or body starting with ``{`` or ``[``): compared as
  values, so whitespace and line breaks between tokens (the docs wrap long
  answers) and the order of an object's members do not matter; the members,
  types and every non-volatile value do.
- **Everything else** line by line, after ``\\r\\n`` becomes ``\\n``, trailing
  spaces are dropped and blank lines at either end are ignored. A line that
  is ``data: `` followed by JSON (a server-sent event) compares its JSON as
  above.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

WILDCARD = "..."
_ANY = "\u2026any"  # stands for a ``...`` value or array element once the shown JSON is parsed
_MORE = "\u2026more"  # stands for a ``...`` member once the shown JSON is parsed

VOLATILE_NUMBERS = {"revision", "compact_revision", "feed_revision", "expires_at"}
_TEXT_RULES = [
    (re.compile(r'\\"\d+\\"'), r'\\"N\\"'),  # an ETag inside a JSON string
    (re.compile(r'"\d+"'), '"N"'),  # an ETag
    (re.compile(r"(revision\W{0,3})\d+", re.I), r"\1N"),
    (re.compile(r"(expires[-_]at\W{0,3})\d+(?:\.\d+)?", re.I), r"\1N"),
    (re.compile(r"^id: \d+$", re.M), "id: N"),
]
_HEADER = re.compile(r"^(?P<name>[A-Za-z0-9-]+):[ \t]*(?P<value>.*)$")


def normalise_text(text: str) -> str:
    """``text`` with its volatile numbers replaced by ``N`` (see the module docstring)."""
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement, text)
    return text


def mismatch(shown: str, printed: str) -> str | None:
    """None when ``printed`` agrees with ``shown`` under the rules above; else what differs."""
    shown_lines, printed_lines = _lines(shown), _lines(printed)
    if shown_lines and shown_lines[0].startswith("HTTP/"):
        return _http(shown_lines, printed_lines)
    return _body(shown_lines, printed_lines)


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _http(shown: list[str], printed: list[str]) -> str | None:
    if not printed or printed[0] != shown[0]:
        return f"status line {printed[0] if printed else '(nothing)'!r}, not {shown[0]!r}"
    i = 1
    shown_headers: list[str] = []
    while i < len(shown) and shown[i] and (_HEADER.match(shown[i]) or shown[i] == WILDCARD):
        if shown[i] != WILDCARD:
            shown_headers.append(shown[i])
        i += 1
    shown_body = shown[i + 1:] if i < len(shown) and not shown[i] else shown[i:]
    end = printed.index("") if "" in printed else len(printed)
    printed_headers, printed_body = printed[1:end], printed[end + 1:]
    at = 0
    for line in shown_headers:
        while at < len(printed_headers) and not _header_ok(line, printed_headers[at]):
            at += 1
        if at == len(printed_headers):
            return f"no header {line!r} (in this order) among {printed_headers}"
        at += 1
    if not shown_body:
        return None
    return _body(shown_body, printed_body)


def _header_ok(shown: str, printed: str) -> bool:
    a, b = _HEADER.match(shown), _HEADER.match(printed)
    if a is None or b is None or a["name"].lower() != b["name"].lower():
        return False
    name = a["name"].lower()
    return _text_ok(f"{name}: {a['value']}", f"{name}: {b['value']}")


def _body(shown: list[str], printed: list[str]) -> str | None:
    if shown and shown[0][:1] in "{[":
        expected = _shown_json("\n".join(shown))
        if expected is not None:
            try:
                actual = json.loads("\n".join(printed))
            except ValueError:
                return f"not JSON: {chr(10).join(printed)!r}"
            return _json(expected, actual, "$")
    if _lines_ok(tuple(shown), tuple(printed)):
        return None
    return "the lines differ"


def _lines_ok(shown: tuple[str, ...], printed: tuple[str, ...]) -> bool:
    @cache
    def ok(i: int, j: int) -> bool:
        if i == len(shown):
            return j == len(printed)
        if shown[i] == WILDCARD:
            return any(ok(i + 1, k) for k in range(j, len(printed) + 1))
        return j < len(printed) and _line_ok(shown[i], printed[j]) and ok(i + 1, j + 1)

    return ok(0, 0)


def _line_ok(shown: str, printed: str) -> bool:
    if shown.startswith("data: {") and printed.startswith("data: {"):
        expected = _shown_json(shown[6:])
        try:
            actual = json.loads(printed[6:])
        except ValueError:
            return False
        if expected is not None:
            return _json(expected, actual, "$") is None
    return _text_ok(shown, printed)


def _text_ok(shown: str, printed: str) -> bool:
    """``printed`` matches ``shown`` after normalisation, ``...`` in ``shown`` matching any text."""
    pattern = ".*".join(re.escape(part) for part in normalise_text(shown).split(WILDCARD))
    return re.fullmatch(pattern, normalise_text(printed), re.S) is not None


def _shown_json(text: str) -> Any:
    """The JSON value ``text`` shows, its ``...`` outside strings made into markers; None if it is not JSON."""
    out: list[str] = []
    stack: list[str] = []
    previous = ""  # the last significant character outside strings
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            end = i + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[i:end + 1])
            previous = '"'
            i = end + 1
            continue
        if text.startswith(WILDCARD, i):
            if stack and stack[-1] == "{" and previous in "{,":
                out.append(f'"{_MORE}": null')
            else:
                out.append(f'"{_ANY}"')
            previous = '"'
            i += len(WILDCARD)
            continue
        if c in "{[":
            stack.append(c)
        elif c in "}]" and stack:
            stack.pop()
        if not c.isspace():
            previous = c
        out.append(c)
        i += 1
    try:
        return json.loads("".join(out))
    except ValueError:
        return None


def _json(shown: Any, printed: Any, path: str) -> str | None:
    if shown == _ANY:
        return None
    if isinstance(shown, dict):
        if not isinstance(printed, dict):
            return f"{path}: {printed!r} is not an object"
        more = shown.get(_MORE, 0) is None
        keys = [k for k in shown if k != _MORE]
        missing = [k for k in keys if k not in printed]
        extra = [k for k in printed if k not in shown]
        if missing or (extra and not more):
            parts = [f"missing {missing}"] if missing else []
            parts += [f"not shown {extra}"] if extra and not more else []
            return f"{path}: members {', '.join(parts)}"
        for key in keys:
            if key in VOLATILE_NUMBERS and _is_number(shown[key]) and _is_number(printed[key]):
                continue
            reason = _json(shown[key], printed[key], f"{path}.{key}")
            if reason:
                return reason
        return None
    if isinstance(shown, list):
        if not isinstance(printed, list):
            return f"{path}: {printed!r} is not an array"
        open_end = bool(shown) and shown[-1] == _ANY
        items = shown[:-1] if open_end else shown
        if len(printed) < len(items) or (len(printed) > len(items) and not open_end):
            return f"{path}: {len(printed)} elements, not {len(items)}"
        for n, (a, b) in enumerate(zip(items, printed, strict=False)):
            reason = _json(a, b, f"{path}[{n}]")
            if reason:
                return reason
        return None
    if isinstance(shown, str):
        if isinstance(printed, str) and _text_ok(shown, printed):
            return None
        return f"{path}: {printed!r}, not {shown!r}"
    if type(shown) is not type(printed) or shown != printed:
        return f"{path}: {printed!r}, not {shown!r}"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
