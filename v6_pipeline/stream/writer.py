"""Batched writes of `position_updates`: one commit per batch, and no row dropped.

A batch is committed when its oldest row has waited `flush_s`, when it holds
`batch_rows` rows, or at once when asked (a reconnect's repairs). Rows stay in memory
until their commit lands: a failed write is retried with capped backoff while new rows
keep queueing, and a retried batch cannot write a row twice (the lake's append merges
on (account, conid, timestamp)). Past `max_pending` waiting rows the writer gives up
(`failed`), and at once on a failure no retry can mend (a table of an older schema): the
process must then exit non-zero, and the snapshot of the next start repairs what was
never written.

A row the table cannot store (a conid beyond int64, say) would fail its batch on every
retry and hold back every row behind it. So each batch is screened first: such a row is
set aside (`on_set_aside`, which records it as a dead letter) when the rest of its batch
lands, and never retried.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import polars as pl

from v6_pipeline.lake.errors import BadRowsError, LakeSchemaError
from v6_pipeline.stream.updates import PositionUpdate, to_frame, unstorable
from v6_pipeline.stream.waits import Backoff, wait_at_most

log = logging.getLogger(__name__)

BATCH_ROWS = 5_000
MAX_PENDING = 200_000

Committed = Callable[[Sequence[PositionUpdate], datetime], None]
# Rows set aside, each with why the table cannot store it.
SetAside = Callable[[Sequence[tuple[PositionUpdate, str]]], None]
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
        on_set_aside: SetAside | None = None,
    ) -> None:
        self._write = write
        self._flush_s = flush_s
        self._batch_rows = batch_rows
        self._max_pending = max_pending
        self._on_commit = on_commit
        self._on_set_aside = on_set_aside
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
        self.set_aside = 0
        # Rows ever queued, and ever done with (committed or set aside): rows are done
        # with in the order queued, so `done >= n` means the first n rows are.
        self.queued = 0
        self.done = 0
        self.last_write_at: datetime | None = None
        self.last_error: str | None = None

    @property
    def pending(self) -> list[PositionUpdate]:
        """The rows not committed yet, oldest first (a write in flight included)."""
        return list(self._pending)

    @property
    def oldest_pending_at(self) -> datetime | None:
        """The time of the row that has waited longest for its commit (None: none waits)."""
        return self._pending[0].timestamp if self._pending else None

    def add(self, rows: Sequence[PositionUpdate], *, at_once: bool = False) -> None:
        if not rows:
            return
        if len(self._pending) + len(rows) > self._max_pending:
            if not self.failed.done():
                self.failed.set_result(BacklogFullError(len(self._pending), self.last_error))
            return
        self._pending.extend(rows)
        self.queued += len(rows)
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
        frame, written, refused = _screened(batch)
        started = asyncio.get_running_loop().time()
        if written:
            await asyncio.to_thread(self._write, frame)
        committed_at = datetime.now(UTC)
        del self._pending[: len(batch)]  # rows added meanwhile stay queued
        self._urgent = self._urgent and bool(self._pending)
        self.done += len(batch)
        if refused:
            self._set_aside(refused)
        if not written:
            return
        self.rows_written += len(written)
        self.batches += 1
        self.last_write_at = committed_at
        lags = [(committed_at - row.timestamp).total_seconds() for row in written]
        log.info(
            "wrote %d row(s) for %d key(s) to position_updates in one commit (%.2f s); "
            "event-to-commit lag median %.2f s, max %.2f s",
            len(written),
            len({row.key for row in written}),
            asyncio.get_running_loop().time() - started,
            statistics.median(lags),
            max(lags),
        )
        if self._on_commit is not None:
            self._on_commit(written, committed_at)

    def _set_aside(self, refused: list[tuple[PositionUpdate, str]]) -> None:
        self.set_aside += len(refused)
        for row, reason in refused:
            log.warning(
                "set aside a row position_updates cannot store (%s), never retried; raw fields: %s",
                reason,
                row.raw(),
            )
        if self._on_set_aside is not None:
            self._on_set_aside(refused)


def _screened(
    batch: list[PositionUpdate],
) -> tuple[pl.DataFrame, list[PositionUpdate], list[tuple[PositionUpdate, str]]]:
    """(the frame to write, its rows, the rows the table cannot store with why). Pure: what
    only the data decides is settled before the lake is touched, so no retry meets it."""
    written: list[PositionUpdate] = []
    refused: list[tuple[PositionUpdate, str]] = []
    for row in batch:
        reason = unstorable(row)
        if reason is None:
            written.append(row)
        else:
            refused.append((row, reason))
    try:
        return to_frame(written), written, refused
    except Exception:  # a value no check above foresaw: find the rows it is in, one by one
        pass
    kept: list[PositionUpdate] = []
    for row in written:
        try:
            to_frame([row])
        except Exception as exc:
            refused.append((row, f"it cannot be made a row: {str(exc).splitlines()[0]}"))
        else:
            kept.append(row)
    return to_frame(kept), kept, refused
