"""The change feed: one reader of the store's history per server process, fanned out to every watcher.

While anyone watches, :class:`Feed` reads the changes after the last
revision it has (every ``watch.poll_interval`` seconds, at once after a write
made through this process) and keeps the most recent ones in a ring shared by
all watchers. A watcher holds only a cursor (the last revision it was sent):
it takes its events from the ring while the ring still covers its cursor, and
otherwise one page at a time from the store's history (a watcher that starts
far back, or one too slow to keep up with the ring). So a slow watcher costs
no memory beyond one page; one that accepts nothing for ``watch.send_timeout``
seconds is cut off.

Exactly once, in order: revisions have no gaps and become visible in
revision order (see :mod:`galerakv.backend.base`), every read is causal, and
a watcher's cursor moves only past revisions it has been sent or that do not
match it. After a failover the feed reads from another node at the same
revision; a client that reconnects (to any server instance) resumes with
``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from galerakv.backend.base import ChangeQuery, Event, Store
from galerakv.config import WatchSettings
from galerakv.errors import Compacted, StoreError

log = logging.getLogger("galerakv.server.watch")

PAGE = 256                 # events read from the store at once
RING_EVENTS = 8192         # recent events kept for the watchers of one process
RING_BYTES = 32 << 20      # ... and at most this many value bytes
IDLE_STOP = 30.0           # seconds without a watcher before the feed stops reading
RETRY = 0.5                # seconds between tries while the store cannot be read


@dataclass(frozen=True, slots=True)
class Interest:
    """What one watcher follows."""

    ns: str
    prefix: str = ""
    keys_only: bool = False

    def wants(self, event: Event) -> bool:
        return event.ns == self.ns and event.key.startswith(self.prefix)


class Feed:
    """The process's one reader of the history (see the module docstring)."""

    def __init__(self, store: Store, settings: WatchSettings) -> None:
        self.store = store
        self.settings = settings
        self.head = 0            # every change up to here has been read
        self.ring: deque[Event] = deque()
        self.ring_from = 0       # the ring holds every change after this revision, up to head
        self.ring_bytes = 0
        self.watchers = 0
        self.started = False
        self._changed = asyncio.Event()
        self._nudged = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._idle_since = time.monotonic()
        self._rendered: dict[tuple[int, bool], bytes] = {}  # events of the ring, rendered once for all
        self.reads = 0           # store reads made by the feed (for /v1/status)

    # ------------------------------------------------------------------ the reader

    async def join(self) -> None:
        """A watcher arrives: start reading if nobody was."""
        self.watchers += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    def leave(self) -> None:
        self.watchers -= 1
        if self.watchers == 0:
            self._idle_since = time.monotonic()

    def nudge(self) -> None:
        """A write went through this process: read now rather than at the next poll."""
        if self.watchers:
            self._nudged.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._changed.set()  # wake every watcher: they end

    async def _run(self) -> None:
        self.started = False
        while True:
            try:
                if not self.started:
                    self.head, _ = await self.store.revision()
                    self.ring.clear()
                    self._rendered.clear()
                    self.ring_bytes = 0
                    self.ring_from = self.head
                    self.started = True
                    self._wake()
                page = await self.store.changes(ChangeQuery(self.head, limit=PAGE))
                self.reads += 1
            except Compacted:
                self.started = False  # stalled past the window: start again at the head
                continue
            except StoreError as exc:
                log.info("change feed: %s", exc)
                await asyncio.sleep(RETRY)
                continue
            except Exception:  # the feed must not die
                log.exception("change feed failed")
                await asyncio.sleep(RETRY)
                continue
            if page.events or page.revision > self.head:
                self._keep(page.events)
                self.head = page.revision
                self._wake()
            if len(page.events) == PAGE:
                continue
            if self.watchers == 0 and time.monotonic() - self._idle_since > IDLE_STOP:
                self.started = False
                return
            self._nudged.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), self.settings.poll_interval)

    def _keep(self, events: tuple[Event, ...]) -> None:
        for event in events:
            self.ring.append(event)
            self.ring_bytes += len(event.value)
        while self.ring and (len(self.ring) > RING_EVENTS or self.ring_bytes > RING_BYTES):
            dropped = self.ring.popleft()
            self.ring_bytes -= len(dropped.value)
            self.ring_from = dropped.revision
            self._rendered.pop((dropped.revision, False), None)
            self._rendered.pop((dropped.revision, True), None)

    def render(self, events: list[Event], keys_only: bool) -> bytes:
        """Events as server-sent events; those of the ring are rendered once for every watcher."""
        out: list[bytes] = []
        cache = self._rendered
        for event in events:
            if event.revision <= self.ring_from:
                out.append(sse(event, keys_only))
                continue
            key = (event.revision, keys_only)
            text = cache.get(key)
            if text is None:
                text = cache[key] = sse(event, keys_only)
            out.append(text)
        return b"".join(out)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, after: int, timeout: float) -> bool:
        """Until the feed has read past ``after`` (True), or ``timeout`` seconds (False)."""
        deadline = time.monotonic() + timeout
        while not (self.started and self.head > after):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True

    # ------------------------------------------------------------------ one watcher's reads

    async def read(self, interest: Interest, cursor: int, limit: int = PAGE) -> tuple[list[Event], int]:
        """The watcher's next events after ``cursor`` (at most ``limit``), and its new cursor.

        From the ring when it covers the cursor, else from the store's history
        (raising ``Compacted`` when the cursor is older than the history kept).
        """
        if self.started and self.ring_from <= cursor <= self.head:
            ring = self.ring
            start = bisect.bisect_right(ring, cursor, key=lambda e: e.revision)
            found: list[Event] = []
            moved = self.head
            for i in range(start, len(ring)):
                event = ring[i]
                if interest.wants(event):
                    found.append(event)
                    if len(found) == limit:
                        moved = event.revision
                        break
            return found, moved
        page = await self.store.changes(ChangeQuery(cursor, interest.ns, interest.prefix, limit, interest.keys_only))
        return list(page.events), page.revision

    async def follow(self, interest: Interest, since: int) -> AsyncIterator[list[Event]]:
        """Batches of the watcher's events after ``since``, forever; an empty batch after
        ``watch.keepalive`` seconds without one. Raises ``Compacted`` when the watcher's cursor
        falls out of the history kept."""
        cursor = since
        quiet_since = time.monotonic()
        while True:
            try:
                events, cursor = await self.read(interest, cursor)
            except Compacted:
                raise
            except StoreError as exc:  # the store cannot be read now: keep the cursor, try again
                log.info("watcher: %s", exc)
                await asyncio.sleep(RETRY)
                events = []
            else:
                if events:
                    quiet_since = time.monotonic()
                    yield events
                    continue
                if self.started and cursor < self.head:
                    continue  # a page of the store's history ended below the feed's head: read on
                left = self.settings.keepalive - (time.monotonic() - quiet_since)
                if left > 0 and await self.wait(cursor, left):
                    continue
            if time.monotonic() - quiet_since >= self.settings.keepalive:
                quiet_since = time.monotonic()
                yield []


# ---------------------------------------------------------------------- rendering


def event_json(event: Event, keys_only: bool) -> dict[str, Any]:
    """The ``data`` of an event, as docs/api.md shows it."""
    if event.kind == "delete":
        out: dict[str, Any] = {"key": event.key, "revision": event.revision}
        if event.version is not None:
            out["prev_etag"] = f'"{event.version}"'
        return out
    out = {"key": event.key, "revision": event.revision, "etag": f'"{event.version}"',
           "content_type": event.content_type}
    if event.expires_at is not None:
        out["expires_at"] = round(event.expires_at, 3)
    if not keys_only:
        try:
            out["value"] = event.value.decode("utf-8")
        except UnicodeDecodeError:
            out["value_base64"] = base64.b64encode(event.value).decode()
    return out


def sse(event: Event, keys_only: bool) -> bytes:
    """One server-sent event."""
    return (b"id: %d\nevent: %s\ndata: " % (event.revision, event.kind.encode())
            + orjson.dumps(event_json(event, keys_only)) + b"\n\n")
