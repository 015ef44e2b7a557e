"""Batched writes of `position_updates`: one commit per batch, and no row dropped.

A batch is committed when its oldest row has waited `flush_s`, when it holds
`batch_rows` rows, or at once when asked (a reconnect's repairs). Rows stay in memory
until their commit lands: a failed write is retried with capped backoff while new rows
keep queueing, and a retried batch cannot write a row twice (the lake's append merges
on (account, conid, timestamp)). Past `max_pending` waiting rows the writer gives up
(`failed`), and at once on a failure no retry can mend (a table of an older schema): the
process must then exit non-zero, and the snapshot of the next start repairs what was
never written.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import polars as pl

from v6_pipeline.lake.errors import BadRowsError, LakeSchemaError
from v6_pipeline.stream.updates import PositionUpdate, to_frame
from v6_pipeline.stream.waits import Backoff, wait_at_most

log = logging.getLogger(__name__)

BATCH_ROWS = 5_000
MAX_PENDING = 200_000

Committed = Callable[[Sequence[PositionUpdate], datetime], None]
# Failures the same rows would meet again: retrying cannot help.
_FATAL = (LakeSchemaError, BadRowsError)


class BacklogFullError(Exception):
    def __init__(self, pending: int, last_error: str | None) -> None:
        super().__init__(
            f"{pending} row(s) are waiting for position_updates, the most this stream keeps "
            f"in memory (last write error: {last_error or 'none'}). Exiting so that the "
            "supervisor restarts the stream: its reconnect snapshot writes what is missing. "
            "Check that the lake (V6_LAKE_DIR) is writable."
        )


class BatchWriter:
    """Call `add` from the event loop; run `run()` as a task; `close()` flushes."""

    def __init__(
        self,
        write: Callable[[pl.DataFrame], None],
        *,
        flush_s: float,
        batch_rows: int = BATCH_ROWS,
        max_pending: int = MAX_PENDING,
        on_commit: Committed | None = None,
    ) -> None:
        self._write = write
        self._flush_s = flush_s
        self._batch_rows = batch_rows
        self._max_pending = max_pending
        self._on_commit = on_commit
        self._pending: list[PositionUpdate] = []
        self._urgent = False
        self._closing = False
        self._deadline = 0.0
        self._wake = asyncio.Event()  # rows added, or closing
        self._stop = asyncio.Event()  # closing
        # Set when the writer gives up: a BacklogFullError, or a failure in _FATAL.
        self.failed: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
        self.rows_written = 0
        self.batches = 0
        self.last_write_at: datetime | None = None
        self.last_error: str | None = None

    @property
    def pending(self) -> list[PositionUpdate]:
        """The rows not committed yet, oldest first (a write in flight included)."""
        return list(self._pending)

    def add(self, rows: Sequence[PositionUpdate], *, at_once: bool = False) -> None:
        if not rows:
            return
        if len(self._pending) + len(rows) > self._max_pending:
            if not self.failed.done():
                self.failed.set_result(BacklogFullError(len(self._pending), self.last_error))
            return
        self._pending.extend(rows)
        self._urgent = self._urgent or at_once
        self._wake.set()

    async def run(self) -> None:
        """Commit batches as they fall due, until `close()` has emptied the queue."""
        backoff = Backoff()
        loop = asyncio.get_running_loop()
        while await self._due():
            try:
                await self._commit()
            except _FATAL as exc:
                self.last_error = str(exc)
                if not self.failed.done():
                    self.failed.set_result(exc)
                return
            except Exception as exc:  # any other lake failure: keep the rows, try again
                self.last_error = f"{type(exc).__name__}: {exc}"
                pause = backoff.next()
                if self._closing:
                    pause = min(pause, self._deadline - loop.time())
                    if pause <= 0:
                        return
                log.warning(
                    "writing %d row(s) to position_updates failed (%s); kept in memory, "
                    "retrying in %.1f s",
                    min(len(self._pending), self._batch_rows),
                    self.last_error,
                    pause,
                )
                await wait_at_most(self._stop.wait(), pause)  # a close cuts the pause short
            else:
                backoff.reset()

    async def close(self, timeout_s: float, runner: asyncio.Task[None]) -> int:
        """Commit what is pending within `timeout_s` (`runner` is the task of `run()`);
        returns the number of rows left unwritten."""
        self._closing = True
        self._deadline = asyncio.get_running_loop().time() + timeout_s
        self._wake.set()
        self._stop.set()
        if not await wait_at_most(asyncio.shield(runner), timeout_s + 1.0):
            runner.cancel()
        return len(self._pending)

    async def _due(self) -> bool:
        """Wait until a batch is due; False when closing with nothing left."""
        loop = asyncio.get_running_loop()
        while True:
            if self._closing:
                return bool(self._pending) and loop.time() < self._deadline
            wait: float | None = None
            if self._pending:
                if self._urgent or len(self._pending) >= self._batch_rows:
                    return True
                waited = (datetime.now(UTC) - self._pending[0].timestamp).total_seconds()
                wait = self._flush_s - waited
                if wait <= 0:
                    return True
            self._wake.clear()
            await wait_at_most(self._wake.wait(), wait)

    async def _commit(self) -> None:
        batch = self._pending[: self._batch_rows]
        started = asyncio.get_running_loop().time()
        await asyncio.to_thread(self._write, to_frame(batch))
        committed_at = datetime.now(UTC)
        del self._pending[: len(batch)]  # rows added meanwhile stay queued
        self._urgent = self._urgent and bool(self._pending)
        self.rows_written += len(batch)
        self.batches += 1
        self.last_write_at = committed_at
        lags = [(committed_at - row.timestamp).total_seconds() for row in batch]
        log.info(
            "wrote %d row(s) for %d key(s) to position_updates in one commit (%.2f s); "
            "event-to-commit lag median %.2f s, max %.2f s",
            len(batch),
            len({row.key for row in batch}),
            asyncio.get_running_loop().time() - started,
            statistics.median(lags),
            max(lags),
        )
        if self._on_commit is not None:
            self._on_commit(batch, committed_at)
