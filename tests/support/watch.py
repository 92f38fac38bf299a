"""A watcher of ``/v1/ns/{ns}/watch`` for tests: follows the event stream in a thread, reconnects
with ``Last-Event-ID`` (to the next server in its list) when the stream breaks, and keeps every event."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Seen:
    revision: int
    kind: str
    data: dict[str, Any]


@dataclass
class StreamWatcher:
    urls: list[str]                 # server base URLs, tried in turn after a broken stream
    ns: str
    since: int | None = None
    prefix: str = ""
    deadline: float = 120.0         # seconds this watcher runs at most
    events: list[Seen] = field(default_factory=list)
    comments: int = 0
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)
    final: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # events that end the stream
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _connected: threading.Event = field(default_factory=threading.Event)

    def start(self) -> StreamWatcher:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._connected.wait(20), f"the watcher could not connect: {self.errors}"
        return self

    @property
    def last(self) -> int | None:
        return self.events[-1].revision if self.events else self.since

    def wait_for(self, revision: int, timeout: float = 30.0) -> None:
        """Until an event with ``revision`` or later has arrived."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.events and self.events[-1].revision >= revision:
                return
            time.sleep(0.02)
        raise AssertionError(f"no event up to revision {revision} within {timeout} s; last "
                             f"{self.last}, reconnects {self.reconnects}, errors {self.errors[-3:]}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)

    def _run(self) -> None:
        end = time.monotonic() + self.deadline
        i = 0
        while not self._stop.is_set() and time.monotonic() < end and not self.final:
            url = self.urls[i % len(self.urls)]
            params = {"prefix": self.prefix} if self.prefix else {}
            headers = {}
            if self.last is not None:
                headers["Last-Event-ID"] = str(self.last)
            try:
                with httpx.stream("GET", f"{url}/v1/ns/{self.ns}/watch", params=params, headers=headers,
                                  timeout=httpx.Timeout(5.0, read=2.0)) as r:
                    if r.status_code != 200:
                        self.errors.append(f"{r.status_code} {r.read()[:300]!r}")
                        if r.status_code == 410:
                            self.final.append(("compacted", json.loads(r.read())))
                        raise httpx.TransportError("not a stream")
                    if self.since is None and not self.events:
                        self.since = int(r.headers["x-galerakv-revision"])
                    self._connected.set()
                    self._read(r)
            except httpx.ReadTimeout:
                pass  # the stream was quiet for 2 s: nothing missed, reconnect to check liveness
            except (httpx.TransportError, httpx.StreamError) as exc:
                self.errors.append(f"{url}: {exc!r}")
            if self._stop.is_set() or self.final:
                break
            self.reconnects += 1
            i += 1
            time.sleep(0.1)

    def _read(self, r: httpx.Response) -> None:
        kind, ident, data = "message", None, None
        for line in r.iter_lines():
            if self._stop.is_set():
                return
            if line == "":
                if data is not None:
                    payload = json.loads(data)
                    if kind in ("put", "delete"):
                        assert ident is not None
                        self.events.append(Seen(int(ident), kind, payload))
                    else:
                        self.final.append((kind, payload))
                kind, ident, data = "message", None, None
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                kind = value
            elif name == "id":
                ident = value
            elif name == "data":
                data = value if data is None else data + "\n" + value


def replay(events: list[Seen]) -> dict[str, str]:
    """The state the events leave: key -> value (its base64 for a value that is not UTF-8)."""
    state: dict[str, str] = {}
    for e in events:
        if e.kind == "put":
            state[e.data["key"]] = e.data["value"] if "value" in e.data else e.data["value_base64"]
        else:
            state.pop(e.data["key"], None)
    return state


def assert_exactly_once(events: list[Seen], acknowledged: dict[int, tuple[str, str | None]]) -> None:
    """Strictly increasing revisions, and every acknowledged change (revision -> (key, value or None
    for a delete)) among them, as it was written."""
    revisions = [e.revision for e in events]
    assert revisions == sorted(set(revisions)), "events repeated or out of order"
    by_revision = {e.revision: e for e in events}
    missing = [r for r in acknowledged if r not in by_revision]
    assert not missing, f"{len(missing)} acknowledged changes never arrived, first {sorted(missing)[:5]}"
    for revision, (key, value) in acknowledged.items():
        e = by_revision[revision]
        assert e.data["key"] == key, (revision, e, key)
        assert (e.kind, e.data.get("value")) == (("put", value) if value is not None else ("delete", None))
