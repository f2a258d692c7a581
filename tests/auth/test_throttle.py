"""The login throttle and gate, pure and in one event loop: no overflow at any count, a
failing address checked one attempt at a time and only after its lock, the right
credentials waiting exactly like wrong ones."""

from __future__ import annotations

import asyncio
import itertools
import math
import time

import pytest

from hub.auth import LoginGate, LoginThrottle, TooManyAttemptsError
from hub.auth.gate import QUEUE_FAILING


def test_the_delay_doubles_up_to_the_cap_and_never_overflows() -> None:
    throttle = LoginThrottle(base=0.25, cap=5.0, window=60.0)
    delays = [throttle.failed("10.0.0.1", now=float(i) / 1000) for i in range(1, 1_201)]
    assert delays[:6] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0]
    assert set(delays[5:]) == {5.0}  # past 1,025 failures too (2.0 ** 1024 overflowed)
    assert throttle.failures("10.0.0.1", now=1.2) == 1_200
    assert throttle.delay(10**12) == 5.0
    assert all(math.isfinite(d) for d in delays)


def test_failures_are_counted_per_address_and_forgotten_after_the_window() -> None:
    throttle = LoginThrottle(base=1.0, cap=8.0, window=10.0)
    throttle.failed("a", now=0.0)
    assert throttle.failed("a", now=1.0) == 2.0
    assert throttle.locked_for("a", now=2.0) == pytest.approx(1.0)
    assert throttle.locked_for("b", now=2.0) == 0.0
    assert throttle.failed("a", now=20.0) == 1.0  # window passed: a fresh start


async def _timed_attempt(gate: LoginGate, right: bool, log: list[tuple[float, bool]]) -> str:
    try:
        async with gate.attempt("10.0.0.9") as attempt:
            log.append((time.monotonic(), right))
            if not right:
                await attempt.refuse()
                return "refused"
            return "admitted"
    except TooManyAttemptsError:
        return "too many"


@pytest.mark.timeout(30)
def test_a_failing_address_is_checked_one_at_a_time_after_its_lock_right_or_wrong() -> None:
    lock = 0.2

    async def scenario() -> tuple[list[str], list[tuple[float, bool]], float]:
        gate = LoginGate(LoginThrottle(base=lock, cap=lock))
        log: list[tuple[float, bool]] = []
        first = await _timed_attempt(gate, False, log)
        assert first == "refused"
        failed_at = log[0][0]
        burst = [_timed_attempt(gate, i == 2, log) for i in range(20)]  # the right one inside
        results = await asyncio.gather(*burst)
        return results, log, failed_at

    results, log, failed_at = asyncio.run(scenario())
    checked = [r for r in results if r != "too many"]
    assert len(checked) == 1 + QUEUE_FAILING  # one running, a short queue; the rest unchecked
    assert results.count("too many") == 20 - len(checked)
    assert log[1][0] - failed_at >= 0.9 * lock  # the lock holds the next check back
    for (earlier, was_right), (later, _) in itertools.pairwise(log):
        if not was_right:  # each failure's lock holds the next check back
            assert later - earlier >= 0.9 * lock
    right_at = [at for at, right in log if right]
    assert right_at, results
    assert right_at[0] - failed_at >= 0.9 * lock  # the right one waited like a wrong one


@pytest.mark.timeout(30)
def test_an_address_without_failures_runs_its_checks_in_parallel() -> None:
    async def scenario() -> int:
        gate = LoginGate(LoginThrottle(), per_address=8)
        running = peak = 0

        async def check() -> None:
            nonlocal running, peak
            async with gate.attempt("10.0.0.7"):
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0.05)
                running -= 1

        await asyncio.gather(*(check() for _ in range(16)))
        return peak

    assert asyncio.run(scenario()) == 8
