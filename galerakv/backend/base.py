"""The abstract key-value store every backend implements.

Contract (what every backend guarantees, and the API suite checks on each):

- Keys live in namespaces; both are strings. Keys are ordered by their UTF-8
  bytes (code point order), which is the order of listings.
- Every write (put, delete-then-put included) gives the entry a new opaque
  ``version`` never given before to that key, so versions never repeat (no
  ABA). The HTTP layer uses it as the ETag.
- An entry whose ``expires_at`` has passed is invisible to every operation at
  once, whether or not it has been purged yet.
- A conditional operation whose condition fails is not an error: it returns
  status ``precondition_failed`` with the current entry (or None).
- ``batch`` runs independent operations: each has its own result, and one
  failing condition does not stop the others. ``txn`` is atomic: the compares
  and the chosen branch see one snapshot and commit together or not at all.
- When a write method returns, the write is durable (it survives the server
  process being killed).
- Every change (a put, a delete, a TTL purge) takes the next store-wide
  **revision**: integers without gaps, strictly increasing in commit order
  across all namespaces, the same whichever node or server process is asked.
  A write's result carries the revision the store was at once it committed
  (its last change's, or for a write that changed nothing, the revision it
  was decided at). The history of changes is kept for a retention window and
  read back in revision order by :meth:`Store.changes` (the watch feed).
- Backends raise only :mod:`galerakv.errors` exceptions: ``InvalidRequest``
  for a malformed operation, ``BackendUnavailable`` when the database cannot
  serve, ``OutcomeUnknown`` when a write's commit was not confirmed,
  ``Compacted`` when history older than the retention window is asked for.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

OpKind = Literal["get", "put", "delete"]
EventKind = Literal["put", "delete"]
Status = Literal["ok", "created", "not_found", "precondition_failed"]
CompareTarget = Literal["exists", "version", "value"]


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored value and its metadata."""

    key: str
    value: bytes
    content_type: str
    version: str
    expires_at: float | None = None

    def ttl_remaining(self, now: float | None = None) -> float | None:
        if self.expires_at is None:
            return None
        return max(0.0, self.expires_at - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a batch or a transaction branch.

    ``if_match`` is a version the entry must have; ``if_none_match`` asks that
    the key not exist (create only). Both apply to put and delete.
    """

    kind: OpKind
    key: str
    value: bytes = b""
    content_type: str = "application/octet-stream"
    ttl: float | None = None
    if_match: str | None = None
    if_none_match: bool = False


@dataclass(frozen=True, slots=True)
class OpResult:
    """The outcome of one operation.

    ``entry`` is the entry read (get), written (put), removed (delete), or, on
    ``precondition_failed``, the current entry if there is one. Of a removed or
    current entry only the metadata is promised (key, version, content type,
    expiry): the MariaDB backend does not read stored values it does not need.
    """

    status: Status
    entry: Entry | None = None
    revision: int = 0  # the store's revision once the write that holds this operation committed


@dataclass(frozen=True, slots=True)
class Compare:
    """One condition of a transaction.

    ``exists``: ``expected`` is a bool. ``version``: ``expected`` is a version
    string. ``value``: ``expected`` is bytes. ``negate`` turns == into !=.
    A missing key has no version and no value, so it equals no expected
    version or value.
    """

    key: str
    target: CompareTarget
    expected: bool | str | bytes
    negate: bool = False

    def holds(self, entry: Entry | None) -> bool:
        if self.target == "exists":
            result = (entry is not None) == bool(self.expected)
        elif self.target == "version":
            result = entry is not None and entry.version == self.expected
        else:
            result = entry is not None and entry.value == self.expected
        return result != self.negate


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    results: tuple[OpResult, ...]
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    """One change of the history: a put (with the entry written) or a delete.

    ``version`` is the entry's new version (put) or the removed one's (delete,
    None when the backend did not keep it).
    """

    revision: int
    ns: str
    key: str
    kind: EventKind
    value: bytes = b""
    content_type: str = ""
    version: str | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class ChangePage:
    """Changes after a revision, in revision order.

    ``revision``: every change up to it has been looked at (the last event's
    when the page is full, else the store's revision when read); the next page
    starts after it. ``compacted``: the oldest ``since`` the history still
    serves (changes up to it are gone).
    """

    events: tuple[Event, ...]
    revision: int
    compacted: int


@dataclass(frozen=True, slots=True)
class ChangeQuery:
    """Which changes to read: after ``since``, in ``ns`` (None: every namespace), keys starting
    with ``prefix``, at most ``limit``, values left out when ``keys_only``."""

    since: int
    ns: str | None = None
    prefix: str = ""
    limit: int = 256
    keys_only: bool = False


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history is kept: at most ``revisions`` changes, none older than ``seconds``."""

    revisions: int
    seconds: float

    def horizon(self, head: int, oldest_kept_after: int) -> int:
        """The revision to compact up to: beyond the count window, or the newest change too old
        (``oldest_kept_after``: the newest revision committed before the age limit, or 0)."""
        return max(0, head - self.revisions, oldest_kept_after)


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a listing: entries (values empty when keys_only), common
    prefixes (with a delimiter), and the cursor of the next page or None."""

    entries: tuple[Entry, ...]
    prefixes: tuple[str, ...] = ()
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class ListQuery:
    prefix: str = ""
    limit: int = 100
    cursor: str | None = None
    keys_only: bool = False
    delimiter: str | None = None
    max_bytes: int | None = None  # the page ends early (with a cursor) once its values reach this


@dataclass(frozen=True)
class BackendStatus:
    """What ``/readyz`` and ``/v1/status`` report about the backend."""

    ready: bool
    kind: str
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def unmet_condition(op: Op, current: Entry | None) -> OpResult | None:
    """The result of ``op`` when its condition fails against ``current``, else None.

    Shared by every backend, so If-Match / If-None-Match mean the same everywhere:
    ``if_none_match`` wants no entry; ``if_match`` wants an entry with that
    version (``*``: any entry). A delete of a missing key is ``not_found``.
    """
    if op.kind == "get":
        return None
    if op.if_none_match and current is not None:
        return OpResult("precondition_failed", current)
    if op.if_match is not None and (current is None or (op.if_match != "*" and current.version != op.if_match)):
        return OpResult("precondition_failed", current)
    if op.kind == "delete" and current is None:
        return OpResult("not_found")
    return None


def settled(op: Op, current: Entry | None) -> OpResult | None:
    """The result of ``op`` when it changes nothing: a get's read, or a failed condition
    (:func:`unmet_condition`); None when the put or delete is to be made."""
    if op.kind == "get":
        return OpResult("ok", current) if current else OpResult("not_found")
    return unmet_condition(op, current)


def with_revision(result: Any, revision: int) -> Any:
    """A unit's result (an OpResult, a list of them, a TxnResult) stamped with its revision."""
    if isinstance(result, list):
        return [replace(r, revision=revision) for r in result]
    return replace(result, revision=revision)


def unit_revision(result: OpResult | list[OpResult] | TxnResult) -> int:
    """The revision a write's result carries (0 for an empty batch)."""
    if isinstance(result, list):
        return max((r.revision for r in result), default=0)
    return result.revision


def expiry(ttl: float | None, now: float | None = None) -> float | None:
    """Absolute expiry time for a TTL in seconds (None: never)."""
    if ttl is None:
        return None
    return (time.time() if now is None else now) + ttl


class Store(abc.ABC):
    """A key-value store. Methods are coroutines; see the module docstring."""

    kind: str = "abstract"

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create or migrate the schema."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def get(self, ns: str, key: str, *, local: bool = False) -> Entry | None:
        """The live entry or None. ``local``: a cheaper read that may miss the
        latest writes made through other nodes (replicated backends only)."""

    @abc.abstractmethod
    async def put(self, ns: str, key: str, value: bytes, content_type: str, *,
                  ttl: float | None = None, if_match: str | None = None,
                  if_none_match: bool = False) -> OpResult:
        """Store a value. Status ``created`` or ``ok``, or ``precondition_failed``."""

    @abc.abstractmethod
    async def delete(self, ns: str, key: str, *, if_match: str | None = None) -> OpResult:
        """Remove a key. Status ``ok``, ``not_found`` or ``precondition_failed``."""

    @abc.abstractmethod
    async def list_keys(self, ns: str, query: ListQuery, *, local: bool = False) -> ListPage: ...

    @abc.abstractmethod
    async def namespaces(self, *, local: bool = False) -> list[str]:
        """The namespaces that hold at least one live key, in byte order."""

    @abc.abstractmethod
    async def batch(self, ns: str, ops: Sequence[Op]) -> list[OpResult]: ...

    @abc.abstractmethod
    async def txn(self, ns: str, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op]) -> TxnResult: ...

    @abc.abstractmethod
    async def purge_expired(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired entries; return how many."""

    @abc.abstractmethod
    async def revision(self) -> tuple[int, int]:
        """The store's revision and how far its history is compacted (causal, like a read)."""

    @abc.abstractmethod
    async def changes(self, query: ChangeQuery) -> ChangePage:
        """The changes after ``query.since`` (causal: every change acknowledged before the call is
        there). Raises ``Compacted`` when ``since`` is older than the history kept."""

    @abc.abstractmethod
    async def compact(self, retention: Retention) -> int:
        """Drop history beyond ``retention``; return the revision compacted up to."""

    @abc.abstractmethod
    async def status(self) -> BackendStatus: ...
