"""Keeping CPython's cyclic garbage collector off the event loop's critical path.

A full collection walks every tracked object; with a large state (100,000 chats, 10,000
feed logs) one pass blocks the event loop for hundreds of milliseconds, and during a poll
cycle, which creates many long-lived objects, such passes came every few seconds and grew
(64 → 304 ms measured at 4,000 feeds: the `/news` p99 spikes of benchmarks/bench_poll.py).

The cure is the one CPython documents for long-lived heaps: ``gc.freeze()`` moves every
object tracked so far into a permanent generation that collections skip. Frozen objects are
still freed by reference counting when they become garbage; only a reference *cycle* among
them is never reclaimed, so :func:`settle` first collects the young generations (cheap: they
hold only what was created since the last settle), which is where short-lived cycles such as
exception tracebacks live.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect young garbage, then freeze everything that survived (call after bulk work)."""
    gc.collect(1)
    gc.freeze()


def release() -> None:
    """Make every frozen object collectable again (shutdown, tests, benchmarks)."""
    gc.unfreeze()
