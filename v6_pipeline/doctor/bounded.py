"""Every item within seconds: a call that may hang (an object store, a database) runs in
a daemon thread and is given up on at its deadline."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TookTooLongError(TimeoutError):
    pass


def within(seconds: float, fn: Callable[[], T], *, what: str) -> T:
    """`fn()`, or `TookTooLongError` naming `what` once `seconds` pass (the thread is
    left to finish on its own; it holds nothing the doctor needs)."""
    result: list[T] = []
    error: list[BaseException] = []

    def call() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    worker = threading.Thread(target=call, name=f"v6-doctor {what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TookTooLongError(f"{what} did not answer within {seconds:g} s")
    if error:
        raise error[0]
    return result[0]
