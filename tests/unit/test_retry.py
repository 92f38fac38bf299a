"""The MariaDB backend's one retry policy: bounded tries, deadline, full-jitter backoff."""

from __future__ import annotations

import random
import time

import pytest

from galerakv.backend.retry import RetryPolicy


def test_attempts_are_bounded_by_tries() -> None:
    attempts = list(RetryPolicy(tries=4).attempts())
    assert [a.number for a in attempts] == [0, 1, 2, 3]
    assert [a.last for a in attempts] == [False, False, False, True]


def test_a_single_try_is_last_at_once() -> None:
    (only,) = list(RetryPolicy(tries=1).attempts())
    assert only.last


def test_deadline_stops_the_attempts_early() -> None:
    policy = RetryPolicy(tries=100, deadline=0.05)
    began = time.monotonic()
    seen = []
    for attempt in policy.attempts():
        seen.append(attempt.number)
        time.sleep(0.03)
        if attempt.last:
            break
    assert len(seen) < 5
    assert time.monotonic() - began < 1


def test_delay_is_full_jitter_under_the_exponential_cap() -> None:
    random.seed(7)
    policy = RetryPolicy(base=0.02, cap=0.5)
    for n in range(12):
        ceiling = min(0.5, 0.02 * 2 ** n)
        delays = [policy.delay(n) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # spread over the whole range, not fixed
        assert len(set(delays)) > 100


@pytest.mark.parametrize("number", [0, 3, 30])
async def test_backoff_sleeps_at_most_the_cap(number: int) -> None:
    policy = RetryPolicy(base=0.001, cap=0.01)
    (attempt,) = [a for a in policy.attempts() if a.number == 0]
    attempt.number = number
    began = time.monotonic()
    await attempt.backoff()
    assert time.monotonic() - began < 0.5


def test_default_policy_is_bounded_in_time() -> None:
    policy = RetryPolicy()
    worst = sum(min(policy.cap, policy.base * 2 ** n) for n in range(policy.tries))
    assert policy.tries >= 3
    assert worst < policy.deadline
