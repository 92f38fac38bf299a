"""Coalescing: items that arrive together share a batch; each is answered on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from galerakv.backend.coalesce import Coalescer


class Recorder:
    """A batch function that doubles numbers, fails on negative ones, and records its batches."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batches: list[list[int]] = []
        self.running = 0
        self.most_running = 0

    async def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        return [ValueError(f"bad {i}") if i < 0 else i * 2 for i in items]


async def test_an_idle_coalescer_runs_an_item_at_once_alone() -> None:
    rec = Recorder()
    c: Coalescer[int, int] = Coalescer(rec, lanes=2, max_items=8)
    assert await c.submit(3) == 6
    assert rec.batches == [[3]]


async def test_items_that_arrive_while_lanes_are_busy_share_a_batch() -> None:
    rec = Recorder(delay=0.02)
    c: Coalescer[int, int] = Coalescer(rec, lanes=1, max_items=100)
    first = asyncio.create_task(c.submit(0))
    await asyncio.sleep(0.005)  # its batch is running
    results = await asyncio.gather(*(c.submit(i) for i in range(1, 10)))
    assert await first == 0 and results == [i * 2 for i in range(1, 10)]
    # the first item went alone; the nine that queued behind it go together
    assert rec.batches == [[0], list(range(1, 10))]
    assert (c.batches, c.items) == (2, 10)


async def test_lanes_bound_the_batches_in_flight() -> None:
    rec = Recorder(delay=0.01)
    c: Coalescer[int, int] = Coalescer(rec, lanes=3, max_items=2)
    results = await asyncio.gather(*(c.submit(i) for i in range(40)))
    assert results == [i * 2 for i in range(40)]
    assert rec.most_running == 3
    assert max(len(b) for b in rec.batches) == 2
    assert sorted(i for b in rec.batches for i in b) == list(range(40))


async def test_one_items_exception_goes_to_that_item_only() -> None:
    c: Coalescer[int, int] = Coalescer(Recorder(delay=0.01), lanes=1, max_items=10)
    outcomes = await asyncio.gather(*(c.submit(i) for i in (1, -2, 3)), return_exceptions=True)
    assert outcomes[0] == 2 and outcomes[2] == 6
    assert isinstance(outcomes[1], ValueError)


async def test_a_failing_batch_function_fails_every_item_of_that_batch() -> None:
    async def broken(items: Sequence[int]) -> list[int | BaseException]:
        raise ConnectionError("the node went away")

    c: Coalescer[int, int] = Coalescer(broken, lanes=1, max_items=10)
    outcomes = await asyncio.gather(*(c.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)


async def test_an_answer_of_the_wrong_length_is_an_error_not_a_hang() -> None:
    async def short(items: Sequence[int]) -> list[int | BaseException]:
        return [1]

    c: Coalescer[int, int] = Coalescer(short, lanes=1, max_items=10)
    outcomes = await asyncio.gather(*(c.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes[1:])


async def test_weight_bounds_a_batch_but_a_heavy_item_still_goes() -> None:
    rec = Recorder(delay=0.01)
    c: Coalescer[int, int] = Coalescer(rec, lanes=1, max_items=100, max_weight=10, weight=lambda i: i)
    await asyncio.gather(*(c.submit(i) for i in (1, 4, 4, 4, 50, 2)))
    assert rec.batches == [[1, 4, 4], [4], [50], [2]]


async def test_back_to_back_submits_never_wait_for_a_lane_that_is_stopping() -> None:
    # Each submit comes right after the previous answer, while the lane that gave it
    # is ending: a lane counted as busy but about to stop must not strand the item.
    rec = Recorder()
    c: Coalescer[int, int] = Coalescer(rec, lanes=1, max_items=4)
    async with asyncio.timeout(5):  # submit awaited inline, not wrapped in a task of its own
        for i in range(200):
            assert await c.submit(i) == i * 2


async def test_a_cancelled_waiter_is_skipped_and_others_are_answered() -> None:
    rec = Recorder(delay=0.02)
    c: Coalescer[int, int] = Coalescer(rec, lanes=1, max_items=10)
    first = asyncio.create_task(c.submit(1))
    await asyncio.sleep(0)
    doomed = asyncio.create_task(c.submit(2))
    kept = asyncio.create_task(c.submit(3))
    await asyncio.sleep(0)
    doomed.cancel()
    assert await first == 2 and await kept == 6
    assert [2] not in rec.batches and all(2 not in b for b in rec.batches)


async def test_close_fails_queued_items_with_the_reason() -> None:
    rec = Recorder(delay=0.05)
    c: Coalescer[int, int] = Coalescer(rec, lanes=1, max_items=10)
    running = asyncio.create_task(c.submit(1))
    await asyncio.sleep(0.01)
    queued = asyncio.create_task(c.submit(2))
    await asyncio.sleep(0)
    await c.close(LookupError("shutting down"))
    assert await running == 2
    with pytest.raises(LookupError):
        await queued


def test_lanes_and_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Coalescer(Recorder(), lanes=0, max_items=1)
    with pytest.raises(ValueError):
        Coalescer(Recorder(), lanes=1, max_items=0)
