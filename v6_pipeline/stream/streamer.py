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
does a lake that refuses writes for so long that the rows kept in memory hit their bound,
and so does finding another `v6 stream` following the same gateway with the same client
id (the gateway refuses one of them, error 326, for as long as both run).

A message that is refused, or whose row `position_updates` cannot store, is set aside as
a dead letter (`deadletters.py`) and the rest keeps flowing; such a message may have
carried a change, so the stream takes a fresh snapshot, and until a complete snapshot's
repairs are all written its heartbeat says since when a change may be missing
(`unrepaired_since`). Each process heartbeats under its own stream id (the settings'
`client@host:port`, then host, pid and a random tag), so two processes never pass for one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from v6_pipeline.ib.error_codes import ErrorCode
from v6_pipeline.ib.errors import ClientIdInUseError, IBSnapshotError
from v6_pipeline.ib.snapshot import IBSnapshot, take_snapshot_async
from v6_pipeline.lake import Lake
from v6_pipeline.lake.errors import LakeError
from v6_pipeline.stream.book import Book, Refused, Repair
from v6_pipeline.stream.deadletters import DeadLetter, Kind, write_dead_letters
from v6_pipeline.stream.settings import StreamSettings
from v6_pipeline.stream.status import StreamStatus, read_stream_status, write_status
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
# Dead letters not yet in their table (the lake down) are kept up to this many; every one
# is in the log regardless.
_LETTERS_KEPT = 10_000
# The variable that chooses the stream's client id, named when the gateway refuses it.
CLIENT_ID_SETTING = "V6_STREAM_CLIENT_ID"
# Another process's heartbeat this many heartbeat periods old still shows it running.
_FRESH_BEATS = 3


class DuplicateStreamError(Exception):
    """Another `v6 stream` follows the same gateway with the same client id."""

    def __init__(self, settings: StreamSettings, other: dict[str, object]) -> None:
        at = other["heartbeat_at"]
        when = at.isoformat(timespec="seconds") if isinstance(at, datetime) else at
        super().__init__(
            f"another `v6 stream` ({other['stream_id']}, pid {other['pid']} on "
            f"{other['hostname']}) is following IB at {settings.host}:{settings.port} with "
            f"client id {settings.client_id} (its heartbeat at {when}), and the gateway "
            f"refuses this one the same id (error {ErrorCode.CLIENT_ID_IN_USE}) for as long "
            "as both run: this one exits. Run one stream per gateway and client id: stop the "
            f"duplicate service, or give this stream its own {CLIENT_ID_SETTING}."
        )


@dataclass(slots=True)
class _Sync:
    """A snapshot's repairs on their way to Delta: when it began, how many rows the writer
    had queued once they were (`mark`), and the first change set aside since it began."""

    began: datetime
    mark: int | None = None
    loss: datetime | None = None


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
    unstorable: int = 0  # rows position_updates could not store, set aside

    def describe(self) -> str:
        ran = (self.stopped_at - self.started_at).total_seconds()
        text = (
            f"ran {ran:.0f} s: {self.events} position message(s) received, "
            f"{self.rows_written} row(s) written in {self.batches} commit(s), "
            f"{self.refused} message(s) refused, {self.reconnects} reconnect(s)"
        )
        if self.unstorable:
            text += f", {self.unstorable} row(s) position_updates could not store"
        if self.refused or self.unstorable:
            text += " (set aside in stream_dead_letters)"
        if self.unwritten:
            text += (
                f"; {self.unwritten} row(s) could NOT be written (the next start's snapshot "
                "repairs them)"
            )
        if self.last_error:
            text += f"; last error: {self.last_error}"
        return text


def _client_id_refused(exc: Exception) -> bool:
    """Whether `exc` is the gateway refusing the client id (error 326)."""
    if isinstance(exc, ClientIdInUseError):
        return True
    return isinstance(exc, SubscribeError) and exc.code == ErrorCode.CLIENT_ID_IN_USE


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
        # Its own id: two processes started with one client id must not pass for one.
        self.stream_id = (
            f"{settings.stream_id}/{socket.gethostname()}:{os.getpid()}/{secrets.token_hex(3)}"
        )
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
        self._subscription: Subscription | None = None
        self._letters: list[DeadLetter] = []  # not in their table yet
        self._dead_letters = 0
        self._last_dead_letter_at: datetime | None = None
        self._unrepaired_since: datetime | None = None
        self._sync: _Sync | None = None

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
        if sessions.done() and not sessions.cancelled() and (ended := sessions.exception()):
            if isinstance(ended, DuplicateStreamError):
                raise ended
            raise RuntimeError("the stream's session loop ended") from ended
        return self._summary(unwritten)

    async def once(self) -> StreamSummary:
        """One snapshot and its repairs committed, then return (`v6 stream --once`)."""
        writer = self._writer = self._new_writer()
        writing = asyncio.create_task(writer.run())
        try:
            book = await self._read_book()
            self._sync_all(book, await self._snapshot())
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
                if _client_id_refused(exc):
                    await self._unless_duplicate()
                pause = backoff.next()
                log.warning("%s; trying again in %.1f s", exc, pause)
            else:
                if ended.code == ErrorCode.CLIENT_ID_IN_USE:
                    await self._unless_duplicate()
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
        self._sync_all(book, await self._snapshot())
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
        self._subscription = subscription
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
            self._subscription = None
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
            settings.host,
            settings.port,
            settings.client_id,
            timeout_s=settings.timeout_s,
            client_id_setting=CLIENT_ID_SETTING,
        )

    def _sync_all(self, book: Book, snapshot: IBSnapshot) -> None:
        """Queue, for an immediate commit, the rows that bring Delta to `snapshot`; once
        the writer is done with them, Delta holds IB's complete answer (`_settle_sync`)."""
        self._sync = sync = _Sync(datetime.now(UTC))  # a refusal in the repair is after it
        self._writer.add(self._repair(book, snapshot).updates, at_once=True)
        sync.mark = self._writer.queued

    def _settle_sync(self) -> None:
        """Once a snapshot's repairs are all done with, what was set aside before it began
        is repaired; a change set aside since still is not."""
        sync = self._sync
        if sync is None or sync.mark is None or self._writer.done < sync.mark:
            return
        self._unrepaired_since = sync.loss
        self._sync = None

    async def _unless_duplicate(self) -> None:
        """Raise DuplicateStreamError when the gateway refused the client id because another
        `v6 stream` process follows it with that id (its heartbeat says so); another kind of
        client holding the id is waited out, as any fault is."""
        settings = self._settings
        fresh = timedelta(seconds=_FRESH_BEATS * settings.heartbeat_s)
        try:
            rows = await asyncio.to_thread(
                read_stream_status, settings.lake_dir, since=datetime.now(UTC) - fresh
            )
        except Exception as exc:  # the lake decides nothing here: keep trying to connect
            log.warning("could not read stream_status for another stream: %s", exc)
            return
        mine = f"{settings.stream_id}/"
        others = rows.filter(
            rows["stream_id"].str.starts_with(mine) & (rows["stream_id"] != self.stream_id)
        )
        if others.height == 0:
            return
        newest = others.sort("heartbeat_at").group_by("stream_id", maintain_order=True).last()
        following = newest.filter(newest["connected"])
        if following.height:
            error = DuplicateStreamError(settings, following.row(-1, named=True))
            self._last_error = str(error)
            log.error("%s", error)
            raise error

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
        self._set_aside(Kind.REFUSED, [(refusal.message, refusal.reason)], lost=refusal.resync)

    def _on_unstorable(self, rows: Sequence[tuple[PositionUpdate, str]]) -> None:
        """Rows the writer set aside: the book counted them written, so it is wrong now."""
        self._set_aside(Kind.UNWRITABLE, rows, lost=True)
        if self._subscription is not None:
            why = f"a row position_updates cannot store was set aside ({rows[0][1]})"
            self._subscription.end(Ended(why, at_once=True))

    def _set_aside(
        self, kind: Kind, messages: Sequence[tuple[PositionUpdate, str]], *, lost: bool
    ) -> None:
        """Keep `messages` as dead letters; `lost`: each may have carried a change that is
        not in Delta until a complete snapshot is written."""
        at = datetime.now(UTC)
        self._letters.extend(
            DeadLetter.of(self.stream_id, kind, reason, message, at) for message, reason in messages
        )
        if len(self._letters) > _LETTERS_KEPT:
            dropped = len(self._letters) - _LETTERS_KEPT
            log.warning("%d dead letter(s) could not be kept for their table (in the log)", dropped)
            del self._letters[:dropped]
        self._dead_letters += len(messages)
        self._last_dead_letter_at = at
        if lost:
            if self._unrepaired_since is None:
                self._unrepaired_since = at
            if self._sync is not None and self._sync.loss is None:
                self._sync.loss = at
        self._beat_now.set()  # the table and the heartbeat say so now

    # --- status ----------------------------------------------------------------------

    def _new_writer(self) -> BatchWriter:
        return BatchWriter(
            self._lake.append_position_updates,
            flush_s=self._settings.flush_s,
            batch_rows=self._batch_rows,
            max_pending=self._max_pending,
            on_commit=self._on_commit,
            on_set_aside=self._on_unstorable,
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
        await self._write_letters()
        self._settle_sync()
        status = StreamStatus(
            stream_id=self.stream_id,
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
            oldest_pending_at=writer.oldest_pending_at,
            dead_letters=self._dead_letters,
            last_dead_letter_at=self._last_dead_letter_at,
            unrepaired_since=self._unrepaired_since,
        )
        try:
            await asyncio.to_thread(write_status, self._settings.lake_dir, status)
        except Exception as exc:  # a missed heartbeat is what the liveness check is for
            log.warning("could not write the heartbeat to stream_status: %s", exc)

    async def _write_letters(self) -> None:
        letters, self._letters = self._letters, []
        if not letters:
            return
        try:
            await asyncio.to_thread(write_dead_letters, self._settings.lake_dir, letters)
        except Exception as exc:  # kept for the next heartbeat; each is in the log already
            log.warning("could not write %d dead letter(s): %s", len(letters), exc)
            self._letters[:0] = letters

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
            unstorable=self._writer.set_aside,
        )
