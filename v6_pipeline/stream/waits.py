"""Waiting: capped exponential backoff, and a wait with a time limit that stays cancellable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


class Backoff:
    """`first`, twice that, ... up to `cap` seconds; `reset()` after a success."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self._first = first
        self._cap = cap
        self._next = first

    def next(self) -> float:
        pause = self._next
        self._next = min(self._next * 2, self._cap)
        return pause

    def reset(self) -> None:
        self._next = self._first


async def wait_at_most(awaitable: Awaitable[object], seconds: float | None) -> bool:
    """Await `awaitable` for at most `seconds` (None: no limit); False when time ran out.

    Not `asyncio.wait_for`: on Python 3.11 it can swallow the cancellation of its caller
    when what it awaits completes at the same moment, and a loop around it then never
    stops (seen here: a heartbeat loop that outlived the stream's stop).
    """
    try:
        async with asyncio.timeout(seconds):
            await awaitable
    except TimeoutError:
        return False
    return True
