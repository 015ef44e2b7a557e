"""Backoff, and a time-limited wait that never swallows its caller's cancellation."""

from __future__ import annotations

import asyncio

from v6_pipeline.stream.waits import Backoff, wait_at_most


def test_backoff_doubles_up_to_its_cap_and_starts_over() -> None:
    backoff = Backoff(first=0.5, cap=3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_wait_at_most_says_whether_it_finished_in_time() -> None:
    async def scenario() -> tuple[bool, bool]:
        event = asyncio.Event()
        late = await wait_at_most(event.wait(), 0.01)
        event.set()
        return late, await wait_at_most(event.wait(), 1)

    assert asyncio.run(scenario()) == (False, True)


def test_a_loop_of_waits_stops_when_cancelled_as_its_event_fires() -> None:
    """The stream's heartbeat loop once outlived its stop: on Python 3.11, `asyncio.wait_for`
    returns instead of raising when the cancellation and the event arrive together."""

    async def scenario() -> bool:
        event = asyncio.Event()

        async def beats() -> None:
            while True:
                await wait_at_most(event.wait(), 10)
                event.clear()

        task = asyncio.create_task(beats())
        await asyncio.sleep(0)  # the loop is waiting
        event.set()
        task.cancel()  # in the same moment
        done, _ = await asyncio.wait({task}, timeout=1)
        return task in done and task.cancelled()

    assert asyncio.run(scenario())
