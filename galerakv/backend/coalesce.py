"""Coalescing: requests that arrive together share one database round trip.

A :class:`Coalescer` runs at most ``lanes`` batches at a time. An item
submitted while a lane is free starts a batch of its own at once (no added
latency when the server is idle); items submitted while every lane is busy
wait in a queue and go together in the next batch a lane takes, up to
``max_items`` (and ``max_weight``, for example value bytes). Under load the
batches grow by themselves, the way a database's group commit does, and the
cost per item of a round trip (and, on Galera, of a replication and
certification round or a causality wait) shrinks.

The batch function answers every item on its own: a list with one result or
one exception per item, in order. An exception raised by the batch function
itself goes to every item of the batch.

Pure asyncio, no I/O of its own: unit-tested with a fake batch function.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - an item
R = TypeVar("R")  # its result

BatchFn = Callable[[Sequence[I]], Awaitable[Sequence["R | BaseException"]]]


class Coalescer(Generic[I, R]):
    """Batches of items run by ``run`` on at most ``lanes`` concurrent lanes."""

    def __init__(self, run: BatchFn[I, R], *, lanes: int, max_items: int,
                 max_weight: int | None = None, weight: Callable[[I], int] | None = None) -> None:
        if lanes < 1 or max_items < 1:
            raise ValueError("lanes and max_items must be at least 1")
        self._run = run
        self.lanes = lanes
        self.max_items = max_items
        self.max_weight = max_weight
        self._weight = weight
        self._queue: collections.deque[tuple[I, asyncio.Future[R]]] = collections.deque()
        self._active: set[asyncio.Task[None]] = set()
        self._running = 0  # lanes that will look at the queue again before they stop
        # counters for /metrics and the benchmarks: batches run, items in them
        self.batches = 0
        self.items = 0

    async def submit(self, item: I) -> R:
        """Run ``item`` in the next batch and return its own result (or raise its exception)."""
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if self._running < self.lanes:
            # counted here, and uncounted by the lane in the same step in which it finds the
            # queue empty, so an item is never left queued with no lane to take it
            self._running += 1
            task = asyncio.create_task(self._lane())
            self._active.add(task)
            task.add_done_callback(self._active.discard)
        return await fut

    def _take(self) -> list[tuple[I, asyncio.Future[R]]]:
        batch: list[tuple[I, asyncio.Future[R]]] = []
        weight = 0
        while self._queue and len(batch) < self.max_items:
            item, fut = self._queue[0]
            if fut.done():  # its caller went away (cancelled) before the batch formed
                self._queue.popleft()
                continue
            w = self._weight(item) if self._weight is not None else 0
            if batch and self.max_weight is not None and weight + w > self.max_weight:
                break  # a single item always goes, however heavy
            weight += w
            batch.append(self._queue.popleft())
        return batch

    async def _lane(self) -> None:
        try:
            while True:
                batch = self._take()
                if not batch:
                    return  # the finally below uncounts this lane in this same step
                await self._run_batch(batch)
        finally:
            self._running -= 1

    async def _run_batch(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results: Sequence[R | BaseException] = await self._run([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch function answered {len(results)} of {len(batch)} items")
        except Exception as exc:
            results = [exc] * len(batch)
        except BaseException:  # cancelled (shutdown): nobody may wait forever
            for _, fut in batch:
                if not fut.done():
                    fut.cancel()
            raise
        for (_, fut), result in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    async def close(self, reason: BaseException) -> None:
        """Fail the items still queued with ``reason``; wait for the batches in flight."""
        while self._queue:
            _, fut = self._queue.popleft()
            if not fut.done():
                fut.set_exception(reason)
        if self._active:
            await asyncio.gather(*self._active, return_exceptions=True)
