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
- Backends raise only :mod:`galerakv.errors` exceptions: ``InvalidRequest``
  for a malformed operation, ``BackendUnavailable`` when the database cannot
  serve, ``OutcomeUnknown`` when a write's commit was not confirmed.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

OpKind = Literal["get", "put", "delete"]
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
    async def batch(self, ns: str, ops: Sequence[Op]) -> list[OpResult]: ...

    @abc.abstractmethod
    async def txn(self, ns: str, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op]) -> TxnResult: ...

    @abc.abstractmethod
    async def purge_expired(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired entries; return how many."""

    @abc.abstractmethod
    async def status(self) -> BackendStatus: ...
