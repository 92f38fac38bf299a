"""A logical dump of namespaces as NDJSON: exported from any store, imported into any store.

The format, one JSON object a line (UTF-8)::

    {"galerakv_export":1,"revision":1234,"created":"2025-01-01T12:00:00.000Z"}
    {"ns":"app","key":"a","value_base64":"aGk=","content_type":"text/plain","ttl":null}
    {"ns":"app","key":"b","value_base64":"AAE=","content_type":"application/octet-stream","ttl":59.25}

The header comes first: the format (1), the store's revision when the export began and when
that was. Records follow, namespaces in order and keys in byte order (the order of listings,
the same on every backend), each rendered the same way, so the same data exported from SQLite
and from Galera gives the same bytes but for the header and the ``ttl`` values. ``ttl`` is the
seconds the key had left when its line was written, rounded up to the millisecond, or null
(never expires); expired keys are left out. An export reads a page of keys at a time: it is
not a snapshot of one instant (a key written meanwhile may be there, old or new).

Import checks every line with the server's own rules for namespaces, keys, values, content
types and TTLs (:class:`BadLine` names the first bad line), and writes the records as
unconditional puts, a batch per namespace at a time; so importing the same dump twice leaves
the same keys, values and content types (with new versions, and TTLs counted again from the
import). A header may come again further on (dumps concatenated). A seekable input (a file)
is checked whole before the first write, so a bad line leaves the store as it was; a stream (a
pipe) is written as it is read, and a bad line stops it once the lines before it are written.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from galerakv.backend.base import Entry, ListQuery, Op, Store
from galerakv.backend.keys import CONTENT_TYPE_RE, key_fault, key_size
from galerakv.config import NAMESPACE_RE, LimitsSettings
from galerakv.errors import InvalidRequest, StoreError

FORMAT = 1
FIELDS = ("ns", "key", "value_base64", "content_type", "ttl")
_FIELD_SET = frozenset(FIELDS)
_HEADER_FIELDS = frozenset({"galerakv_export", "revision", "created"})
_FIELD_LIST = "ns, key, value_base64, content_type and ttl"

PAGE_KEYS = 500          # keys listed per read when exporting, at most
PAGE_BYTES = 8 << 20     # ... and about this many value bytes, going by the page before
FIRST_PAGE_KEYS = 16     # the first page of a namespace, before its value sizes are known
BATCH_KEYS = 500         # puts per batch when importing, at most
BATCH_BYTES = 4 << 20    # ... and value bytes per batch (under the Galera backend's group size)


class BadLine(InvalidRequest):
    """A line of an import is not a valid record (or header). ``imported``: the keys written
    before it was read (0 when the input was checked whole before writing)."""

    def __init__(self, line: int, problem: str, imported: int = 0) -> None:
        after = "nothing was imported"
        if imported:
            keys = "1 key" if imported == 1 else f"{imported} keys"
            after = (f"the {keys} of the lines before it {'was' if imported == 1 else 'were'} imported, none "
                     "after it (import is idempotent: fix the line and import the whole input again)")
        super().__init__(f"line {line}: {problem}; {after}")
        self.line = line
        self.problem = problem
        self.imported = imported


class ImportStopped(StoreError):
    """The store failed part way through an import; ``imported`` keys were written before."""

    def __init__(self, cause: StoreError, line: int, imported: int) -> None:
        super().__init__(f"{cause}; the import stopped at the batch starting at line {line}: the {imported} "
                         "keys of the lines before it were imported (the batch itself may or may not be); "
                         "import the same input again once the store answers")
        self.code = cause.code
        self.line = line
        self.imported = imported


@dataclass(frozen=True, slots=True)
class Record:
    """One key of a dump, as it is to be written."""

    ns: str
    key: str
    value: bytes
    content_type: str
    ttl: float | None


@dataclass(slots=True)
class Summary:
    """What an export or import did: keys and namespaces, how long it took; for an import also
    how many puts created a key and how many replaced one."""

    keys: int = 0
    namespaces: int = 0
    seconds: float = 0.0
    created: int = 0
    replaced: int = 0

    @property
    def keys_per_second(self) -> float:
        return self.keys / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"keys": self.keys, "namespaces": self.namespaces, "seconds": round(self.seconds, 3),
                "keys_per_second": round(self.keys_per_second, 1), "created": self.created,
                "replaced": self.replaced}


# ---------------------------------------------------------------------------- the lines


def remaining_ttl(expires_at: float | None, now: float) -> float | None:
    """Seconds left before ``expires_at``, rounded up to the millisecond (never 0 for a live key);
    None when the key never expires."""
    if expires_at is None:
        return None
    return math.ceil((expires_at - now) * 1000) / 1000


def header_line(revision: int, created: float) -> bytes:
    when = dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds")
    return orjson.dumps({"galerakv_export": FORMAT, "revision": revision,
                         "created": when.replace("+00:00", "Z")}) + b"\n"


def record_line(ns: str, entry: Entry, now: float) -> bytes | None:
    """The line of one entry, or None when it has expired by ``now``."""
    ttl = remaining_ttl(entry.expires_at, now)
    if ttl is not None and ttl <= 0:
        return None
    return orjson.dumps({"ns": ns, "key": entry.key, "value_base64": base64.b64encode(entry.value).decode(),
                         "content_type": entry.content_type, "ttl": ttl}) + b"\n"


def _load(raw: bytes, line: int) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadLine(line, f"not valid JSON ({exc.msg} at byte {exc.pos})") from None
    if not isinstance(obj, dict):
        raise BadLine(line, "not a JSON object")
    return obj


def parse_header(obj: dict[str, Any], line: int) -> int:
    """The revision of a header line (its object), checked."""
    version = obj.get("galerakv_export")
    if version != FORMAT or isinstance(version, bool):
        raise BadLine(line, f"a galerakv export of format {version!r}; this galerakv reads format {FORMAT}")
    unknown = sorted(set(obj) - _HEADER_FIELDS)
    if unknown:
        raise BadLine(line, f"the header has an unknown field {unknown[0]!r}")
    revision = obj.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise BadLine(line, "the header's revision must be a whole number from 0")
    if not isinstance(obj.get("created"), str):
        raise BadLine(line, "the header's created must be a time as text")
    return revision


def parse_record(obj: dict[str, Any], line: int, limits: LimitsSettings) -> Record:
    """A record line (its object), checked against the rules the server applies to a put."""
    missing = [name for name in FIELDS if name not in obj]
    if missing:
        raise BadLine(line, f"no field {missing[0]!r} (a record has {_FIELD_LIST})")
    unknown = sorted(set(obj) - _FIELD_SET)
    if unknown:
        raise BadLine(line, f"unknown field {unknown[0]!r} (a record has {_FIELD_LIST})")
    ns, key, b64, content_type, ttl = (obj[name] for name in FIELDS)
    for name, value in (("ns", ns), ("key", key), ("value_base64", b64), ("content_type", content_type)):
        if not isinstance(value, str):
            raise BadLine(line, f"{name} must be a string, not {orjson.dumps(value).decode()[:40]}")
    if not NAMESPACE_RE.match(ns):
        raise BadLine(line, f"ns {ns[:64]!r} is not a valid namespace: use 1-128 letters, digits, '.', '_' or "
                            "'-', starting with a letter or digit")
    fault = key_fault(key, limits.max_key_bytes)
    if fault is not None:
        raise BadLine(line, {
            "empty": "key is empty",
            "too_large": f"key is {key_size(key)} bytes; the limit is {limits.max_key_bytes} bytes "
                         "(limits.max_key_bytes)",
            "nul": "key contains a NUL character, which is not allowed",
            "not_unicode": "key is not valid Unicode text (it holds a lone surrogate)",
        }[fault])
    try:
        value = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise BadLine(line, "value_base64 is not valid base64") from None
    if len(value) > limits.max_value_bytes:
        raise BadLine(line, f"the value is {len(value)} bytes; the limit is {limits.max_value_bytes} bytes "
                            "(limits.max_value_bytes)")
    if not CONTENT_TYPE_RE.match(content_type):
        raise BadLine(line, f"content_type {content_type[:64]!r} is not valid: printable ASCII of 1 to 255 "
                            "characters")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl)
                            or not 0 < ttl <= limits.max_ttl_seconds):
        raise BadLine(line, f"ttl must be null (no expiry) or a number of seconds greater than 0 and at most "
                            f"{limits.max_ttl_seconds} (limits.max_ttl_seconds), not "
                            f"{orjson.dumps(ttl).decode()[:40]}")
    return Record(ns, key, value, content_type, None if ttl is None else float(ttl))


def max_line_bytes(limits: LimitsSettings) -> int:
    """The longest line a valid record can be: its value in base64, its key with every byte
    escaped as ``\\u00XX``, room for the rest."""
    return 4 * ((limits.max_value_bytes + 2) // 3) + 6 * limits.max_key_bytes + 4096


def records(stream: BinaryIO, limits: LimitsSettings) -> Iterator[tuple[int, Record]]:
    """The records of a dump with their line numbers, each checked as it is read (a header
    first, and again wherever dumps were concatenated); raises :class:`BadLine`."""
    longest = max_line_bytes(limits)
    line = 0
    while raw := stream.readline(longest + 1):
        line += 1
        if len(raw) > longest and not raw.endswith(b"\n"):
            raise BadLine(line, f"longer than {longest} bytes, more than a record can be under "
                                "limits.max_value_bytes and limits.max_key_bytes")
        obj = _load(raw, line)
        if "galerakv_export" in obj:
            parse_header(obj, line)
        elif line == 1:
            raise BadLine(1, 'not the header of a galerakv export (such as {"galerakv_export": 1, '
                             '"revision": 0, "created": "..."}, the first line `galerakv export` writes)')
        else:
            yield line, parse_record(obj, line, limits)
    if line == 0:
        raise BadLine(1, "the input is empty; a galerakv export begins with its header line")


# ---------------------------------------------------------------------------- export and import


async def export(store: Store, write: Callable[[bytes], object], *, namespaces: Sequence[str] | None = None,
                 prefix: str = "") -> Summary:
    """Write the live keys of ``namespaces`` (default: every one that has keys) that start with
    ``prefix`` as a dump, a line at a time through ``write``, a page of keys in memory at most."""
    began = time.monotonic()
    summary = Summary()
    revision, _ = await store.revision()
    write(header_line(revision, time.time()))
    names = sorted(set(namespaces)) if namespaces is not None else await store.namespaces()
    for ns in names:
        query = ListQuery(prefix=prefix, limit=FIRST_PAGE_KEYS)
        before = summary.keys
        while True:
            page = await store.list_keys(ns, query)
            now = time.time()
            for entry in page.entries:
                line = record_line(ns, entry, now)
                if line is not None:
                    write(line)
                    summary.keys += 1
            if page.next_cursor is None:
                break
            average = sum(len(entry.value) for entry in page.entries) // max(1, len(page.entries))
            limit = max(1, min(PAGE_KEYS, PAGE_BYTES // max(1, average)))
            query = ListQuery(prefix=prefix, limit=limit, cursor=page.next_cursor)
        summary.namespaces += summary.keys > before
    summary.seconds = time.monotonic() - began
    return summary


async def load(store: Store, stream: BinaryIO, limits: LimitsSettings) -> Summary:
    """Import a dump read from ``stream`` (see the module docstring); raises :class:`BadLine`
    for a bad line and :class:`ImportStopped` when the store fails part way."""
    began = time.monotonic()
    if stream.seekable():  # a file: check it whole before writing anything
        start = stream.tell()
        for _ in records(stream, limits):
            pass
        stream.seek(start)
    summary = Summary()
    batches = _Batches(store, summary)
    try:
        for line, record in records(stream, limits):
            if batches.full(record):
                await batches.send()
            batches.add(line, record)
    except BadLine as exc:
        await batches.finish()  # the lines before it
        raise BadLine(exc.line, exc.problem, summary.keys) from None
    finally:
        await batches.drain()  # no write left running, whatever happened
    await batches.finish()
    summary.seconds = time.monotonic() - began
    return summary


class _Batches:
    """The puts of one namespace gathered into a batch; one batch is written while the next is
    read (in order, so a key given twice keeps its last line)."""

    def __init__(self, store: Store, summary: Summary) -> None:
        self.store = store
        self.summary = summary
        self.ns = ""
        self.ops: list[Op] = []
        self.size = 0
        self.first_line = 0
        self.namespaces: set[str] = set()
        self.writing: asyncio.Task[None] | None = None

    def full(self, record: Record) -> bool:
        """Whether the batch is to be sent before ``record`` joins it."""
        return bool(self.ops) and (record.ns != self.ns or len(self.ops) >= BATCH_KEYS
                                   or self.size + len(record.value) > BATCH_BYTES)

    def add(self, line: int, record: Record) -> None:
        if not self.ops:
            self.ns, self.first_line, self.size = record.ns, line, 0
        self.ops.append(Op("put", record.key, record.value, record.content_type, record.ttl))
        self.size += len(record.value)

    async def send(self) -> None:
        """Start writing the batch gathered, once the one before it is written."""
        if not self.ops:
            return
        await self.drain()
        self.writing = asyncio.ensure_future(self._write(self.ns, self.ops, self.first_line))
        self.ops = []

    async def drain(self) -> None:
        """Wait for the batch being written; raise its error."""
        if self.writing is not None:
            writing, self.writing = self.writing, None
            await writing

    async def finish(self) -> None:
        """Write what was gathered and wait until everything is written."""
        await self.send()
        await self.drain()

    async def _write(self, ns: str, ops: list[Op], first_line: int) -> None:
        try:
            results = await self.store.batch(ns, ops)
        except StoreError as exc:
            raise ImportStopped(exc, first_line, self.summary.keys) from exc
        created = sum(result.status == "created" for result in results)
        self.summary.keys += len(results)
        self.summary.created += created
        self.summary.replaced += len(results) - created
        self.namespaces.add(ns)
        self.summary.namespaces = len(self.namespaces)
