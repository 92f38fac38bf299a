"""Where the MariaDB backend sends each query: endpoints, their health, the writer.

Pure data and decisions, no I/O, so they are unit-tested without a database:

- ``route = "nodes"``: every Galera node is an endpoint that can read and
  write. One node writes at a time (a single writer avoids certification
  conflicts); it moves only when it fails, to the first healthy node in the
  configured order, and does not move back when the old one returns.
- ``route = "balancer"``: two endpoints, the balancer's read-write port and
  its read-only port; the balancer does the node choice.

Reads go round-robin over the healthy endpoints that can read.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from galerakv.config import Settings
from galerakv.galera.status import node_status


@dataclass(frozen=True)
class Endpoint:
    name: str
    host: str
    port: int
    writes: bool = True
    reads: bool = True


@dataclass(frozen=True)
class Health:
    """What the last probe (or a failed query) said about one endpoint."""

    healthy: bool
    reason: str = ""
    state: str = ""
    cluster_size: int = 0
    checked_at: float = field(default_factory=time.monotonic)


def endpoints(settings: Settings) -> tuple[Endpoint, ...]:
    if settings.server.route == "balancer":
        b = settings.balancer
        return (Endpoint("balancer-rw", b.address, b.rw_port, writes=True, reads=True),
                Endpoint("balancer-ro", b.address, b.ro_port, writes=False, reads=True))
    return tuple(Endpoint(n.name, n.address, n.port) for n in settings.cluster.nodes)


def judge(status: Mapping[str, str]) -> Health:
    """Health of a node from its ``SHOW STATUS LIKE 'wsrep_%'`` values: the one
    judgement of :meth:`~galerakv.galera.status.NodeStatus.serving`."""
    node = node_status("", status)
    serving = node.serving()
    return Health(serving.ok, serving.reason, node.state, node.cluster_size)


def choose_writer(current: str | None, order: Sequence[Endpoint], health: Mapping[str, Health]) -> str | None:
    """Keep the current writer while it is healthy, else the first healthy writable endpoint."""
    def ok(name: str) -> bool:
        h = health.get(name)
        return h is not None and h.healthy

    if current is not None and ok(current):
        return current
    for ep in order:
        if ep.writes and ok(ep.name):
            return ep.name
    return None


class Router:
    """Mutable routing state: the latest health of each endpoint and the writer."""

    def __init__(self, eps: Sequence[Endpoint]) -> None:
        self.endpoints = tuple(eps)
        self.by_name = {ep.name: ep for ep in self.endpoints}
        self.health: dict[str, Health] = {}
        self.writer: str | None = None
        self.writer_lost_at: float | None = None  # when the last writer failed with no other to take over
        self._rr: Iterator[int] = itertools.count(random.randrange(1000))

    def update(self, name: str, health: Health) -> None:
        self.update_all({name: health})

    def update_all(self, healths: Mapping[str, Health]) -> None:
        """Record a whole probe round at once, so the writer is chosen in configured order,
        not in the order the probes happened to answer (servers then agree on one writer)."""
        before = self.writer
        self.health.update(healths)
        self.writer = choose_writer(self.writer, self.endpoints, self.health)
        if before is not None and self.writer is None:
            self.writer_lost_at = time.monotonic()

    def fail(self, name: str, reason: str) -> None:
        """A query on ``name`` failed the way a dead node fails: stop using it until a probe says otherwise."""
        self.update(name, Health(False, reason))

    def readers(self) -> list[Endpoint]:
        """Healthy readable endpoints, rotated so consecutive reads spread over them."""
        ok = [ep for ep in self.endpoints if ep.reads and self.health.get(ep.name, Health(False)).healthy]
        if not ok:
            return []
        shift = next(self._rr) % len(ok)
        return ok[shift:] + ok[:shift]

    def summary(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for ep in self.endpoints:
            h = self.health.get(ep.name)
            out.append({"name": ep.name, "address": f"{ep.host}:{ep.port}",
                        "healthy": bool(h and h.healthy), "state": h.state if h else "",
                        "reason": h.reason if h else "not probed yet",
                        "writer": ep.name == self.writer})
        return out
