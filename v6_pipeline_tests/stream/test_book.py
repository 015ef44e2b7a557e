"""The book, exhaustively: which messages become rows, which are refused, what a snapshot
repairs. Pure: no gateway, no lake."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from v6_pipeline.stream.book import Book, Refused
from v6_pipeline.stream.updates import COLUMNS, PositionUpdate, from_frame, to_frame, update

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
ACCOUNTS = ("DU111", "DU222")


def msg(seconds: float = 0, **fields: Any) -> PositionUpdate:
    """A position message for DU111 / conid 500001 (SPY 600 C) unless told otherwise."""
    values: dict[str, Any] = {
        "account": "DU111",
        "conid": 500001,
        "symbol": "SPY",
        "sec_type": "OPT",
        "right": "C",
        "strike": 600.0,
        "expiry": "20270115",
        "multiplier": "100",
        "currency": "USD",
        "position": -3.0,
        "avg_cost": 1234.5,
        "timestamp": T0 + timedelta(seconds=seconds),
    }
    values.update(fields)
    return update(**values)


HELD = msg(-60)  # the book's row in most cases: DU111 500001 at -3, cost 1234.5


# --- a lone message ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "message", "written"),
    [
        ([], msg(position=2.0), True),  # a new position
        ([], msg(position=0.0), False),  # flat and never held: nothing to say
        ([HELD], msg(), False),  # delivered again
        ([HELD], msg(position=-2.0), True),  # a fill
        ([HELD], msg(avg_cost=1200.0), True),  # the cost moved
        ([HELD], msg(avg_cost=None), True),  # the cost became unknown
        ([HELD], msg(position=0.0, avg_cost=0.0), True),  # closed
        ([msg(-60, position=0.0, avg_cost=0.0)], msg(position=0.0, avg_cost=99.0), False),
        ([msg(-60, position=0.0, avg_cost=None)], msg(position=0.0, avg_cost=0.0), False),
        ([msg(-60, position=0.0)], msg(position=1.0), True),  # reopened
        ([HELD], msg(account="DU222"), True),  # the same conid in another account
        ([HELD], msg(multiplier="10"), False),  # details alone are no position change
    ],
)
def test_a_message_is_a_row_only_when_it_changes_the_key(
    held: list[PositionUpdate], message: PositionUpdate, written: bool
) -> None:
    book = Book(held)
    verdict = book.observe(message, ACCOUNTS)
    assert verdict == (message if written else None)
    if written:
        assert book.latest(message.key) == message


def test_a_message_repeated_many_times_writes_one_row() -> None:
    book = Book([HELD])
    verdicts = [book.observe(msg(s, position=-1.0), ACCOUNTS) for s in range(50)]
    assert verdicts[0] == msg(0, position=-1.0)
    assert verdicts[1:] == [None] * 49
    assert book.latest(HELD.key) == msg(0, position=-1.0)  # the first one's time


@pytest.mark.parametrize(
    ("message", "reason", "resync"),
    [
        (msg(account="DU999"), "account 'DU999' is not one the gateway manages", False),
        (msg(position=math.nan), "the quantity is not a finite number", True),
        (msg(position=math.inf), "the quantity is not a finite number", True),
        (msg(position=-math.inf), "the quantity is not a finite number", True),
        (msg(conid=0, position=1.0), "the conid is not a contract id", True),
        (msg(conid=-5, position=1.0), "the conid is not a contract id", True),
        # issue #20: it reached the writer and failed its batch forever
        (msg(conid=2**63, position=1.0), "beyond the 64-bit range", True),
        (msg(conid=2**64, position=1.0), "the conid 18446744073709551616 is beyond", True),
        (msg(symbol="  "), "the symbol is empty", True),
        (msg(symbol="QQQ"), "conid 500001 in DU111 is SPY 20270115 600 C (OPT) in the book", True),
        (msg(strike=650.0), "and this message says SPY 20270115 650 C (OPT)", True),
        (msg(sec_type="FOP"), "this message says SPY 20270115 600 C (FOP)", True),
        (msg(conid=777, position=1.0), "in DU111 is conid 500001 in the book", True),
    ],
)
def test_bad_or_contradicting_messages_are_refused_and_change_nothing(
    message: PositionUpdate, reason: str, resync: bool
) -> None:
    book = Book([HELD])
    verdict = book.observe(message, ACCOUNTS)
    assert isinstance(verdict, Refused)
    assert reason in verdict.reason
    assert verdict.resync is resync
    assert f"position={message.position!r}" in verdict.describe()  # the raw fields
    assert book.latest(HELD.key) == HELD
    assert book.latest(message.key) in (None, HELD)
    # the book still takes a good message for the key afterwards
    assert book.observe(msg(1, position=-7.0), ACCOUNTS) == msg(1, position=-7.0)


def test_no_account_announced_refuses_everything() -> None:
    verdict = Book().observe(msg(), ())
    assert isinstance(verdict, Refused)
    assert "none announced" in verdict.reason


@pytest.mark.parametrize(
    "message",
    [
        msg(conid=777, account="DU222", position=1.0),  # that contract elsewhere: its own key
        msg(conid=777, position=1.0, sec_type=""),  # a description too vague to match
        msg(conid=777, position=1.0, strike=650.0),  # another contract
    ],
)
def test_a_new_conid_is_taken_unless_its_contract_is_known_under_another(
    message: PositionUpdate,
) -> None:
    book = Book([HELD, msg(-60, sec_type="", conid=500009)])
    assert book.observe(message, ACCOUNTS) == message


def test_a_known_conid_with_a_known_twin_is_taken() -> None:
    twin = msg(-60, conid=500002, position=1.0)  # two conids, one description: both known
    book = Book([HELD, twin])
    assert book.observe(msg(position=-1.0), ACCOUNTS) == msg(position=-1.0)
    assert book.observe(msg(conid=500002, position=2.0), ACCOUNTS) is not None


@given(
    st.lists(
        st.tuples(
            st.sampled_from([("DU111", 1), ("DU111", 2), ("DU222", 1)]),
            st.sampled_from([-2.0, 0.0, 0.5, 3.0]),
            st.sampled_from([None, 0.0, 10.0]),
        ),
        max_size=40,
    )
)
def test_the_written_rows_replay_to_the_last_message_of_every_key(
    messages: list[tuple[tuple[str, int], float, float | None]],
) -> None:
    book = Book()
    written: list[PositionUpdate] = []
    last: dict[tuple[str, int], tuple[float, float | None]] = {}
    for i, ((account, conid), quantity, cost) in enumerate(messages):
        m = msg(
            i, account=account, conid=conid, symbol=f"S{conid}", position=quantity, avg_cost=cost
        )
        verdict = book.observe(m, ACCOUNTS)
        assert not isinstance(verdict, Refused)
        if verdict is not None:
            written.append(verdict)
        last[m.key] = (quantity, cost)
    replayed: dict[tuple[str, int], PositionUpdate] = {}
    for row in written:
        before = replayed.get(row.key)
        # never a row that says nothing new
        assert before is None or (before.position, before.avg_cost) != (row.position, row.avg_cost)
        replayed[row.key] = row
    for key, (quantity, cost) in last.items():
        got = replayed.get(key)
        assert (got.position if got else 0.0) == quantity
        if quantity != 0:
            assert got is not None
            assert got.avg_cost == cost


# --- a complete snapshot ------------------------------------------------------------

TAKEN = T0 + timedelta(minutes=5)


def snap(**fields: Any) -> PositionUpdate:
    return msg(300, **fields)  # at TAKEN


def test_a_snapshot_writes_what_differs_and_closes_what_ib_no_longer_lists() -> None:
    gone = msg(-60, conid=500003, symbol="QQQ", strike=500.0, position=2.0)
    flat = msg(-60, conid=500004, symbol="IWM", position=0.0)
    elsewhere = msg(-60, account="DU333", conid=500005, position=4.0)  # not covered
    book = Book([HELD, gone, flat, elsewhere, msg(-60, account="DU222", position=1.0)])
    snapshot = [
        snap(),  # unchanged
        snap(account="DU222", position=2.0),  # changed
        snap(conid=600001, symbol="AAPL", sec_type="STK", strike=0.0, right="", position=5.0),
        snap(conid=600002, symbol="MSFT", sec_type="STK", strike=0.0, right="", position=0.0),
    ]
    repair = book.repair(snapshot, ACCOUNTS, TAKEN)
    assert repair.updates == [snapshot[1], snapshot[2], gone.closed(TAKEN)]
    assert {u.timestamp for u in repair.updates} == {TAKEN}
    closed = repair.updates[-1]
    assert (closed.symbol, closed.strike, closed.position, closed.avg_cost) == (
        "QQQ",
        500.0,
        0.0,
        0.0,
    )
    assert repair.before == {("DU222", 500001): 1.0, ("DU111", 500003): 2.0}
    assert repair.refused == []
    # the same snapshot again repairs nothing
    assert book.repair(snapshot, ACCOUNTS, TAKEN).updates == []
    assert book.latest(elsewhere.key) == elsewhere


def test_a_snapshot_reporting_zero_closes_an_open_key() -> None:
    book = Book([HELD])
    repair = book.repair([snap(position=0.0, avg_cost=0.0)], ACCOUNTS, TAKEN)
    assert [(u.position, u.timestamp) for u in repair.updates] == [(0.0, TAKEN)]


def test_an_empty_snapshot_closes_every_open_key_of_its_accounts() -> None:
    other = msg(-60, account="DU222", conid=9, symbol="ES", sec_type="FUT", position=-1.0)
    book = Book([HELD, other])
    repair = book.repair([], ("DU111",), TAKEN)
    assert [u.key for u in repair.updates] == [HELD.key]


def test_a_snapshot_refuses_foreign_accounts_and_writes_the_rest() -> None:
    book = Book()
    foreign = snap(account="DU999", position=1.0)
    repair = book.repair([foreign, snap()], ACCOUNTS, TAKEN)
    assert repair.updates == [snap()]
    assert [r.message for r in repair.refused] == [foreign]
    assert book.latest(foreign.key) is None


def test_a_snapshot_is_believed_about_what_a_conid_is() -> None:
    book = Book([HELD])
    renamed = snap(symbol="SPY1", multiplier="50", position=-3.0)
    assert book.repair([renamed], ACCOUNTS, TAKEN).updates == []  # same quantity and cost
    # messages now agree with IB's new description, and the old one contradicts it
    assert book.observe(msg(301, symbol="SPY1", multiplier="50", position=-4.0), ACCOUNTS)
    assert isinstance(book.observe(msg(302, position=-5.0), ACCOUNTS), Refused)


def test_a_snapshot_teaches_a_new_conid_for_a_known_contract() -> None:
    book = Book([HELD])
    new = snap(conid=777, position=1.0)
    assert book.repair([snap(), new], ACCOUNTS, TAKEN).updates == [new]
    assert book.observe(msg(301, conid=777, position=2.0), ACCOUNTS) is not None


def test_overlay_keeps_the_newer_row_of_a_key() -> None:
    book = Book([HELD])
    older = msg(-120, position=9.0)
    newer = msg(10, position=-2.0)
    book.overlay([older])
    assert book.latest(HELD.key) == HELD
    book.overlay([newer])
    assert book.latest(HELD.key) == newer
    assert len(book) == 1


# --- frames ---------------------------------------------------------------------------


def test_frames_round_trip_in_the_tables_schema() -> None:
    rows = [msg(), msg(1, account="DU222", avg_cost=None, position=0.5)]
    frame = to_frame(rows)
    assert frame.schema == COLUMNS
    assert from_frame(frame) == rows
    assert to_frame([]).schema == COLUMNS


def test_a_cost_that_is_not_a_number_is_unknown_and_nulls_read_as_empty() -> None:
    assert msg(avg_cost=math.nan).avg_cost is None
    assert msg(avg_cost=math.inf).avg_cost is None
    legacy = pl.DataFrame(
        {"conid": [1], "symbol": ["SPY"], "position": [1.0], "timestamp": [T0]}
    ).with_columns(account=pl.lit(None, pl.String), strike=pl.lit(None, pl.Float64))
    (row,) = from_frame(legacy)
    assert (row.account, row.sec_type, row.strike, row.avg_cost) == ("", "", 0.0, None)
    (taken,) = from_frame(legacy, timestamp=TAKEN)
    assert taken.timestamp == TAKEN


def test_closed_keeps_the_contract_and_flattens_the_cost() -> None:
    assert HELD.closed(TAKEN) == dataclasses.replace(
        HELD, position=0.0, avg_cost=0.0, timestamp=TAKEN
    )
