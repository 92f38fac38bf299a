"""The one retry policy of the MariaDB backend: bounded attempts, full-jitter backoff.

Used as a loop, never as recursion inside ``except``::

    for attempt in policy.attempts():
        ...
        await attempt.backoff()   # before trying again
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    tries: int = 6
    base: float = 0.02
    cap: float = 0.5
    deadline: float = 20.0  # seconds for all attempts together

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return random.uniform(0, min(self.cap, self.base * (2 ** attempt)))

    def attempts(self) -> Iterator[Attempt]:
        started = time.monotonic()
        for n in range(self.tries):
            yield Attempt(self, n, started)
            if time.monotonic() - started > self.deadline:
                return


@dataclass
class Attempt:
    policy: RetryPolicy
    number: int
    started: float

    @property
    def last(self) -> bool:
        return (self.number + 1 >= self.policy.tries
                or time.monotonic() - self.started > self.policy.deadline)

    async def backoff(self) -> None:
        await asyncio.sleep(self.policy.delay(self.number))
