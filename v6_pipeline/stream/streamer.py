"""`v6 stream`'s loop: snapshot, follow, write, heartbeat; start over on any fault.

A session:

1. Reads Delta's latest (with the rows still waiting for their commit) into a `Book`.
2. Takes a complete snapshot with the pipeline's own code (`ib/snapshot.py`: complete or
   an error) and queues, for an immediate commit, the rows that bring Delta to it, closes
   included: a change missed while the stream was away is repaired before anything else.
3. Opens the subscription with the same client id (the snapshot's connection is closed
   by then) and queues a row for every message that changes the book, until it ends.

Then again: at once when IB said data may have been lost (1101/1102) or a message was
refused or dropped, else after a capped exponential backoff (a gateway down, its nightly
restart, 1100), reset by a session that followed events for a while. A fault never ends
the process; a stop does (SIGINT/SIGTERM: the pending batch is flushed first), and so
does a lake that refuses writes for so long that the rows kept in memory hit their bound.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from v6_pipeline.ib.errors import IBSnapshotError
from v6_pipeline.ib.snapshot import IBSnapshot, take_snapshot_async
from v6_pipeline.lake import Lake
from v6_pipeline.lake.errors import LakeError
from v6_pipeline.stream.book import Book, Refused, Repair
from v6_pipeline.stream.settings import StreamSettings
from v6_pipeline.stream.status import StreamStatus, write_status
from v6_pipeline.stream.subscription import Ended, SubscribeError, Subscription
from v6_pipeline.stream.updates import PositionUpdate, from_frame
from v6_pipeline.stream.waits import Backoff, wait_at_most
from v6_pipeline.stream.writer import BATCH_ROWS, MAX_PENDING, BatchWriter, Committed

log = logging.getLogger(__name__)

# A session that followed events this long was healthy: the backoff starts over.
HEALTHY_S = 5.0
# The final flush must fit in a supervisor's stop grace (`docker stop` waits 10 s).
FINAL_FLUSH_S = 5.0
# Repairs listed one by one in the log; the rest are counted.
_REPAIRS_SHOWN = 20
_EXPECTED = (IBSnapshotError, SubscribeError, LakeError, OSError)


@dataclass(frozen=True, slots=True)
class StreamSummary:
    started_at: datetime
    stopped_at: datetime
    events: int
    rows_written: int
    batches: int
    refused: int
    reconnects: int
    unwritten: int
    last_error: str | None

    def describe(self) -> str:
        ran = (self.stopped_at - self.started_at).total_seconds()
        text = (
            f"ran {ran:.0f} s: {self.events} position message(s) received, "
            f"{self.rows_written} row(s) written in {self.batches} commit(s), "
            f"{self.refused} message(s) refused, {self.reconnects} reconnect(s)"
        )
        if self.unwritten:
            text += (
                f"; {self.unwritten} row(s) could NOT be written (the next start's snapshot "
                "repairs them)"
            )
        if self.last_error:
            text += f"; last error: {self.last_error}"
        return text


class Streamer:
    """The stream of one gateway into one lake; `run(stop)` until `stop` is set."""

    def __init__(
        self,
        settings: StreamSettings,
        *,
        batch_rows: int = BATCH_ROWS,
        max_pending: int = MAX_PENDING,
        on_commit: Committed | None = None,
    ) -> None:
        self._settings = settings
        self._lake = Lake(settings.lake_dir, default_account=settings.default_account)
        self._batch_rows = batch_rows
        self._max_pending = max_pending
        self._on_commit = on_commit
        self._writer: BatchWriter  # made by run() or once(), inside the event loop
        self._started_at = datetime.now(UTC)
        self._connected = False
        self._since = self._started_at
        self._beat_now = asyncio.Event()
        self._events = 0
        self._refused = 0
        self._reconnects = 0
        self._last_event_at: datetime | None = None
        self._last_error: str | None = None

    async def run(self, stop: asyncio.Event) -> StreamSummary:
        """Stream until `stop` is set; raises what made the writer give up (BacklogFullError,
        a lake schema it cannot append to) after flushing what it can."""
        writer = self._writer = self._new_writer()
        writing = asyncio.create_task(writer.run())
        beating = asyncio.create_task(self._heartbeats())
        sessions = asyncio.create_task(self._sessions())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait(
                {stopping, sessions, writer.failed}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (stopping, sessions, beating):
                task.cancel()
            await asyncio.gather(sessions, beating, return_exceptions=True)
            unwritten = await writer.close(FINAL_FLUSH_S, writing)
            self._set_connected(False)
            await self._beat()
        if writer.failed.done():
            raise writer.failed.result()
        if sessions.done() and not sessions.cancelled() and sessions.exception():
            raise RuntimeError("the stream's session loop ended") from sessions.exception()
        return self._summary(unwritten)

    async def once(self) -> StreamSummary:
        """One snapshot and its repairs committed, then return (`v6 stream --once`)."""
        writer = self._writer = self._new_writer()
        writing = asyncio.create_task(writer.run())
        try:
            book = await self._read_book()
            writer.add(self._repair(book, await self._snapshot()).updates, at_once=True)
        finally:
            unwritten = await writer.close(FINAL_FLUSH_S, writing)
            await self._beat()
        return self._summary(unwritten)

    # --- sessions --------------------------------------------------------------------

    async def _sessions(self) -> None:
        backoff = Backoff()
        while True:
            try:
                ended, followed_s = await self._session()
            except Exception as exc:
                if not isinstance(exc, _EXPECTED):
                    log.exception("unexpected failure of the stream session")
                self._last_error = str(exc)
                pause = backoff.next()
                log.warning("%s; trying again in %.1f s", exc, pause)
            else:
                if followed_s >= HEALTHY_S:
                    backoff.reset()
                pause = 0.0 if ended.at_once and followed_s >= HEALTHY_S else backoff.next()
                self._last_error = ended.reason
                then = "taking a fresh snapshot now" if not pause else f"again in {pause:.1f} s"
                log.warning("stopped following IB's position events: %s; %s", ended.reason, then)
            self._set_connected(False)
            self._reconnects += 1
            await asyncio.sleep(pause)

    async def _session(self) -> tuple[Ended, float]:
        """One session; returns why it ended and how long it followed events."""
        book = await self._read_book()
        snapshot = await self._snapshot()
        self._writer.add(self._repair(book, snapshot).updates, at_once=True)
        settings = self._settings

        def on_message(message: PositionUpdate) -> None:
            self._events += 1
            self._last_event_at = message.timestamp
            verdict = book.observe(message, subscription.accounts)
            if isinstance(verdict, Refused):
                self._note_refused(verdict)
                if verdict.resync:
                    why = f"a position message was refused ({verdict.reason})"
                    subscription.end(Ended(why, at_once=True))
            elif verdict is not None:
                self._writer.add([verdict])

        subscription = Subscription(settings.host, settings.port, settings.client_id, on_message)
        try:
            await subscription.open(settings.timeout_s)
            self._set_connected(True)
            log.info(
                "following IB's position events at %s:%d as client %d (%s)",
                settings.host,
                settings.port,
                settings.client_id,
                ", ".join(subscription.accounts),
            )
            began = asyncio.get_running_loop().time()
            ended = await subscription.ended
            return ended, asyncio.get_running_loop().time() - began
        finally:
            subscription.close()

    async def _read_book(self) -> Book:
        # The pending rows are taken before Delta is read: a row committed in between is
        # then in one or both, never in neither.
        pending = self._writer.pending
        latest = await asyncio.to_thread(self._lake.read_latest, as_of=datetime.now(UTC))
        book = Book(from_frame(latest))
        book.overlay(pending)
        return book

    async def _snapshot(self) -> IBSnapshot:
        settings = self._settings
        return await take_snapshot_async(
            settings.host, settings.port, settings.client_id, timeout_s=settings.timeout_s
        )

    def _repair(self, book: Book, snapshot: IBSnapshot) -> Repair:
        rows = from_frame(snapshot.positions, timestamp=snapshot.taken_at)
        repair = book.repair(rows, snapshot.accounts, snapshot.taken_at)
        for refusal in repair.refused:
            self._note_refused(refusal)
        log.info(
            "snapshot: IB lists %d position(s) in %s; %d row(s) bring position_updates to it",
            len(rows),
            ", ".join(snapshot.accounts),
            len(repair.updates),
        )
        for row in repair.updates[:_REPAIRS_SHOWN]:
            was = repair.before.get(row.key)
            log.info(
                "repair: %s %s conid %d: Delta %s -> IB %g",
                row.account,
                row.contract.describe(),
                row.conid,
                "no row" if was is None else f"{was:g}",
                row.position,
            )
        if len(repair.updates) > _REPAIRS_SHOWN:
            log.info("repair: ... and %d more", len(repair.updates) - _REPAIRS_SHOWN)
        return repair

    def _note_refused(self, refusal: Refused) -> None:
        self._refused += 1
        log.warning("refused a position message, nothing written: %s", refusal.describe())

    # --- status ----------------------------------------------------------------------

    def _new_writer(self) -> BatchWriter:
        return BatchWriter(
            self._lake.append_position_updates,
            flush_s=self._settings.flush_s,
            batch_rows=self._batch_rows,
            max_pending=self._max_pending,
            on_commit=self._on_commit,
        )

    def _set_connected(self, connected: bool) -> None:
        if connected != self._connected:
            self._connected = connected
            self._since = datetime.now(UTC)
            self._beat_now.set()

    async def _heartbeats(self) -> None:
        while True:
            self._beat_now.clear()
            await self._beat()
            await wait_at_most(self._beat_now.wait(), self._settings.heartbeat_s)

    async def _beat(self) -> None:
        writer = self._writer
        status = StreamStatus(
            stream_id=self._settings.stream_id,
            heartbeat_at=datetime.now(UTC),
            connected=self._connected,
            since=self._since,
            last_event_at=self._last_event_at,
            last_write_at=writer.last_write_at,
            rows_written=writer.rows_written,
            events=self._events,
            pending=len(writer.pending),
            reconnects=self._reconnects,
            last_error=writer.last_error or self._last_error,
            started_at=self._started_at,
            hostname=socket.gethostname(),
            pid=os.getpid(),
        )
        try:
            await asyncio.to_thread(write_status, self._settings.lake_dir, status)
        except Exception as exc:  # a missed heartbeat is what the liveness check is for
            log.warning("could not write the heartbeat to stream_status: %s", exc)

    def _summary(self, unwritten: int) -> StreamSummary:
        return StreamSummary(
            started_at=self._started_at,
            stopped_at=datetime.now(UTC),
            events=self._events,
            rows_written=self._writer.rows_written,
            batches=self._writer.batches,
            refused=self._refused,
            reconnects=self._reconnects,
            unwritten=unwritten,
            last_error=self._writer.last_error or self._last_error,
        )
