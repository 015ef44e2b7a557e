"""`v6 stream` end to end: the emulator over a real socket, Delta in a tmp dir."""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.ib.gateway.answers import HUGE_CONID as HUGE
from v6_pipeline.ib.gateway.answers import UNKNOWN_ACCOUNT
from v6_pipeline.ib.snapshot import take_snapshot
from v6_pipeline.lake import Lake
from v6_pipeline.reconcile import reconcile
from v6_pipeline.stream.deadletters import read_dead_letters
from v6_pipeline.stream.liveness import StreamLiveness, stream_liveness
from v6_pipeline.stream.status import read_stream_status
from v6_pipeline.stream.streamer import DuplicateStreamError
from v6_pipeline_tests.stream.support import (
    StreamerThread,
    all_rows,
    book_of,
    caught_up,
    latest,
    newest_status,
    settings,
    wait_until,
    with_position,
    without_position,
)
from v6_pipeline_tests.support import DEMO

SPY_C = ("DU111", 500001)  # DEMO.positions[0]: -3


def following(lake_dir: Path, since: datetime) -> bool:
    """The stream's newest heartbeat says it follows events, connected after `since`."""
    status = newest_status(lake_dir)
    return bool(status) and status["connected"] and status["since"] > since


def test_streaming_writes_the_snapshot_first_then_a_fill_within_3_s(
    gateway: GatewayThread, lake_dir: Path
) -> None:
    with StreamerThread(settings(gateway, lake_dir, flush_s=1.0)):
        caught_up(lake_dir)
        assert latest(lake_dir) == book_of(DEMO)  # the flat IWM leg was never written
        gateway.set_portfolio(with_position(DEMO, 0, position=-4.0))  # IB pushes the fill
        took = wait_until(lambda: latest(lake_dir)[SPY_C] == -4.0, what="the fill in Delta")
    assert took < 3.0
    spy = all_rows(lake_dir).filter(account="DU111", conid=500001)
    assert spy["position"].to_list() == [-3.0, -4.0]


def test_redelivered_messages_leave_no_duplicate_rows(
    gateway: GatewayThread, lake_dir: Path
) -> None:
    gateway.set_faults(["repeat-updates"])  # every pushed update comes twice
    with StreamerThread(settings(gateway, lake_dir)):
        caught_up(lake_dir)
        gateway.set_portfolio(with_position(DEMO, 0, position=-4.0))
        wait_until(lambda: latest(lake_dir)[SPY_C] == -4.0)
        time.sleep(0.8)  # room for a second row to be committed, were there one
    written = all_rows(lake_dir)
    assert written.height == len(book_of(DEMO)) + 1

    restarted = datetime.now(UTC)  # its snapshot and subscription deliver everything again
    with StreamerThread(settings(gateway, lake_dir)):
        wait_until(lambda: following(lake_dir, restarted), what="the restarted stream follows")
        time.sleep(0.8)
    again = all_rows(lake_dir)
    assert again.equals(written)
    assert again.select("account", "conid", "timestamp").is_unique().all()


def test_a_close_missed_while_stopped_is_naked_until_the_restart_repairs_it(
    gateway: GatewayThread, lake_dir: Path
) -> None:
    with StreamerThread(settings(gateway, lake_dir)):
        caught_up(lake_dir)
    closed = without_position(DEMO, 0)  # closed in TWS while no stream ran
    gateway.set_portfolio(closed)

    def discrepancies() -> list[tuple[str, str, int]]:
        snapshot = take_snapshot(gateway.host, gateway.port, 606, timeout_s=5)
        delta = Lake(lake_dir).read_latest(as_of=snapshot.taken_at)
        found = reconcile(snapshot.positions, delta, as_of=snapshot.taken_at, sec_types=None)
        return list(found.select("type", "account", "conid").iter_rows())

    assert discrepancies() == [("NAKED_POSITION", *SPY_C)]
    with StreamerThread(settings(gateway, lake_dir)):
        wait_until(lambda: latest(lake_dir)[SPY_C] == 0.0, what="the close repaired")
    assert discrepancies() == []


def test_the_stream_reconnects_by_itself_when_the_gateway_restarts(
    gateway: GatewayThread, lake_dir: Path
) -> None:
    port = gateway.port
    with StreamerThread(settings(gateway, lake_dir)) as stream:
        caught_up(lake_dir)
        gateway.stop()  # killed mid-stream; positions change while it is down
        changed = with_position(without_position(DEMO, 2), 0, position=-1.0)
        time.sleep(0.5)
        with GatewayThread(changed, port=port) as back:
            caught_up(lake_dir, changed)  # the reconnect snapshot catches up
            filled = with_position(changed, 1, position=6.0)
            back.set_portfolio(filled)  # and events are followed again
            caught_up(lake_dir, filled)
            assert stream.alive
            assert newest_status(lake_dir)["reconnects"] >= 1
    assert latest(lake_dir)[("DU111", 500003)] == 0.0  # the QQQ leg closed while down


@pytest.mark.parametrize(
    "notice", ["notice-connectivity-lost", "notice-restored-data-lost", "notice-restored-data-kept"]
)
def test_connectivity_notices_make_the_stream_take_a_fresh_snapshot(
    gateway: GatewayThread, lake_dir: Path, caplog: pytest.LogCaptureFixture, notice: str
) -> None:
    with StreamerThread(settings(gateway, lake_dir)):
        caught_up(lake_dir)
        wait_until(lambda: following(lake_dir, datetime.min.replace(tzinfo=UTC)))
        served = len(gateway.snapshots)
        noticed = datetime.now(UTC)
        gateway.set_faults([notice])
        wait_until(lambda: following(lake_dir, noticed), what="following again")
        assert len(gateway.snapshots) >= served + 2  # a snapshot, then a new subscription
        assert newest_status(lake_dir)["reconnects"] == 1
    code = {"notice-connectivity-lost": 1100, "notice-restored-data-lost": 1101}.get(notice, 1102)
    assert f"(error {code}:" in caplog.text
    assert all_rows(lake_dir).height == len(book_of(DEMO))  # nothing changed, nothing written


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("malformed-position", "could not decode a position message"),
        ("nonfinite-position", "the quantity is not a finite number"),
    ],
)
def test_a_bad_message_is_logged_with_its_fields_never_written_and_repaired(
    gateway: GatewayThread,
    lake_dir: Path,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    words: str,
) -> None:
    caplog.set_level(logging.WARNING)
    with StreamerThread(settings(gateway, lake_dir)) as stream:
        caught_up(lake_dir)
        gateway.set_faults([fault])  # snapshots fail too while it lasts
        gateway.set_portfolio(with_position(DEMO, 0, position=-4.0))
        wait_until(lambda: words in caplog.text, what=f"the log says {words!r}")
        assert "raw fields" in caplog.text
        assert "'--'" in caplog.text or "position=nan" in caplog.text
        time.sleep(0.5)
        assert latest(lake_dir)[SPY_C] == -3.0  # nothing written from the bad message
        gateway.set_faults([])
        wait_until(lambda: latest(lake_dir)[SPY_C] == -4.0, what="repaired by a snapshot")
        assert stream.alive
    positions = all_rows(lake_dir)["position"].to_list()
    assert all(math.isfinite(q) for q in positions)
    assert all_rows(lake_dir).filter(account="DU111", conid=500001)["position"].to_list() == [
        -3.0,
        -4.0,
    ]


def test_a_position_in_an_unknown_account_is_refused_and_the_rest_written(
    gateway: GatewayThread, lake_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with StreamerThread(settings(gateway, lake_dir)):
        caught_up(lake_dir)
        gateway.set_faults(["unknown-account"])
        gateway.set_portfolio(with_position(DEMO, 0, position=-4.0))
        wait_until(lambda: latest(lake_dir)[SPY_C] == -4.0)
        wait_until(lambda: UNKNOWN_ACCOUNT in caplog.text)
    assert f"account '{UNKNOWN_ACCOUNT}' is not one the gateway manages" in caplog.text
    assert "raw fields: account='DU0UNKNOWN' conid=500001" in caplog.text
    assert UNKNOWN_ACCOUNT not in all_rows(lake_dir)["account"].to_list()
    assert newest_status(lake_dir)["reconnects"] == 0  # a snapshot would not list it either


def test_a_conid_reported_as_another_contract_waits_for_the_snapshot(
    gateway: GatewayThread, lake_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with StreamerThread(settings(gateway, lake_dir)):
        caught_up(lake_dir)
        pushed = datetime.now(UTC)
        renamed = with_position(DEMO, 0, symbol="SPYX", position=-4.0)
        gateway.set_portfolio(renamed)
        wait_until(lambda: latest(lake_dir)[SPY_C] == -4.0, what="IB's snapshot decided")
    assert "conid 500001 in DU111 is SPY 20270115 600 C (OPT) in the book" in caplog.text
    assert "symbol='SPYX'" in caplog.text
    (row,) = all_rows(lake_dir).filter(account="DU111", conid=500001, position=-4.0).to_dicts()
    assert row["symbol"] == "SPYX"
    stored = Lake(lake_dir).read_latest(as_of=datetime.now(UTC))
    assert stored.filter(account="DU222", conid=500001)["symbol"].to_list() == ["SPY"]
    # written from the snapshot the refusal asked for, not from the lone message
    assert row["timestamp"] > pushed
    assert newest_status(lake_dir)["reconnects"] == 1


def test_liveness_passes_while_the_stream_runs_and_fails_once_it_stopped(
    gateway: GatewayThread, lake_dir: Path
) -> None:
    dead_after = timedelta(seconds=2.0)  # ten heartbeats: room for a loaded machine

    def alive() -> bool:
        now = datetime.now(UTC)
        return stream_liveness(
            read_stream_status(lake_dir, until=now), as_of=now, dead_after=dead_after
        ).passed

    assert not alive()  # never ran
    with StreamerThread(settings(gateway, lake_dir, heartbeat_s=0.2)):
        wait_until(alive, what="the check passes")
        time.sleep(1.25 * dead_after.total_seconds())
        assert alive()  # heartbeats keep it passing
    stopped = datetime.now(UTC)
    wait_until(lambda: not alive(), timeout=10, what="the check fails")
    verdict = stream_liveness(
        read_stream_status(lake_dir), as_of=datetime.now(UTC), dead_after=dead_after
    )
    assert "down or stuck" in verdict.description
    assert verdict.newest_heartbeat is not None
    assert verdict.newest_heartbeat <= stopped + timedelta(seconds=0.5)
    assert verdict.connected is False  # its last words


# --- issue #20: changes that cannot be written, and what "alive" means ---------------------


def test_a_streamed_conid_beyond_int64_is_set_aside_and_the_rest_keeps_flowing(
    gateway: GatewayThread, lake_dir: Path
) -> None:
    """One pushed position with a conid beyond int64 made the stream retry its batch
    forever: no later change was written while its heartbeat said all was well."""
    with StreamerThread(settings(gateway, lake_dir)) as stream:
        caught_up(lake_dir)
        gateway.set_faults(["huge-conid-push"])  # every push also carries conid 2^64
        filled = with_position(DEMO, 0, position=-4.0)
        pushed = datetime.now(UTC)
        gateway.set_portfolio(filled)
        caught_up(lake_dir, filled)
        wait_until(lambda: following(lake_dir, pushed), what="following again after a resync")
        later = with_position(filled, 1, position=6.0)
        gateway.set_portfolio(later)  # and what comes after still reaches Delta
        caught_up(lake_dir, later)
        wait_until(
            lambda: (
                newest_status(lake_dir)["dead_letters"] >= 2
                and newest_status(lake_dir)["unrepaired_since"] is None
            ),
            what="both set aside, and repaired by a snapshot",
        )
        assert stream.alive
    letters = read_dead_letters(lake_dir)
    assert letters.height >= 2
    letter = letters.row(0, named=True)
    assert (letter["kind"], letter["conid"], letter["symbol"]) == ("refused", str(HUGE), "BIGID")
    assert "beyond the 64-bit range" in letter["reason"]
    assert f"conid={HUGE}" in letter["raw"]
    assert letter["stream_id"].startswith("607@127.0.0.1:")
    assert "BIGID" not in all_rows(lake_dir)["symbol"].to_list()
    verdict = stream_liveness(
        read_stream_status(lake_dir), as_of=datetime.now(UTC), dead_after=timedelta(seconds=60)
    )
    assert verdict.passed, verdict.description
    assert (verdict.dead_letters or 0) >= 2


def test_liveness_fails_while_changes_do_not_reach_delta(
    gateway: GatewayThread, lake_dir: Path
) -> None:
    """Heartbeats fresh and IB followed, but the lake refuses writes: not alive."""
    dead_after = timedelta(seconds=1.5)

    def verdict() -> StreamLiveness:
        now = datetime.now(UTC)
        return stream_liveness(
            read_stream_status(lake_dir, until=now), as_of=now, dead_after=dead_after
        )

    table, away = lake_dir / "position_updates", lake_dir / "position_updates.away"
    with StreamerThread(settings(gateway, lake_dir, heartbeat_s=0.2)) as stream:
        caught_up(lake_dir)
        wait_until(lambda: verdict().passed, what="the check passes")
        table.rename(away)
        table.write_text("not a Delta table")  # every write fails from now on
        gateway.set_portfolio(with_position(DEMO, 0, position=-4.0))
        wait_until(lambda: not verdict().passed, timeout=15, what="the check fails")
        failed = verdict()
        assert "changes are not reaching position_updates" in failed.description
        assert "1 row(s) have waited for their commit" in failed.description
        assert "V6_LAKE_DIR" in failed.description
        assert failed.connected  # the process runs and follows IB: only Delta lacks it
        table.unlink()
        away.rename(table)  # the lake is back: the kept row lands, the check passes again
        wait_until(lambda: latest(lake_dir)[SPY_C] == -4.0, timeout=40, what="the row lands")
        wait_until(lambda: verdict().passed, timeout=10, what="the check passes again")
        assert stream.alive


def test_a_second_stream_on_one_client_id_exits_and_the_check_does_not_flap(
    gateway: GatewayThread, lake_dir: Path
) -> None:
    dead_after = timedelta(seconds=1.5)
    fast = settings(gateway, lake_dir, heartbeat_s=0.2)
    with StreamerThread(fast) as first:
        caught_up(lake_dir)
        wait_until(lambda: following(lake_dir, datetime.min.replace(tzinfo=UTC)))
        started = datetime.now(UTC)
        with StreamerThread(fast) as second:  # the same client id: the gateway refuses it
            wait_until(lambda: not second.alive, timeout=30, what="the second one exits")
        time.sleep(dead_after.total_seconds() * 1.5)  # its last words age past the limit
        gateway.set_portfolio(with_position(DEMO, 0, position=-4.0))
        wait_until(lambda: latest(lake_dir)[SPY_C] == -4.0, what="the first writes on")
        assert first.alive
        stopping = datetime.now(UTC)
    assert first.streamer is not None
    assert second.streamer is not None
    mine, theirs = first.streamer.stream_id, second.streamer.stream_id
    assert mine != theirs
    assert isinstance(second.error, DuplicateStreamError)
    said = str(second.error)
    assert f"another `v6 stream` ({mine}" in said
    for words in ("client id 607", "error 326", "own V6_STREAM_CLIENT_ID"):
        assert words in said
    rows = read_stream_status(lake_dir)
    assert rows.filter(stream_id=theirs)["last_error"][-1] == said  # its last heartbeat
    # judged at every heartbeat while both ran and after: alive, the first one speaking
    beats = rows.filter((pl.col("heartbeat_at") >= started) & (pl.col("heartbeat_at") < stopping))
    assert beats.filter(stream_id=theirs).height >= 1
    for at in beats["heartbeat_at"]:
        verdict = stream_liveness(rows, as_of=at, dead_after=dead_after)
        assert verdict.passed, verdict.description
        assert verdict.stream_id == mine
