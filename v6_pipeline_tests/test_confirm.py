"""`confirm()`: every pair of first and second verdicts, and fills in flight against a model.

The property test plays a desk's day in miniature: legs close (or open) at random times
around the snapshot, the streamer writes each fill to Delta after a random lag (or never),
and the pipeline reads Delta as of each snapshot after its settle time. The verdict must
be NAKED exactly when the leg is naked at both snapshots.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from v6_pipeline.confirm import INFO, RESOLVED_IN_FLIGHT, confirm, has_critical
from v6_pipeline.reconcile import DiscrepancyType, reconcile

T1 = datetime(2026, 11, 30, 10, 5, 0, 200_000, tzinfo=UTC)
T2 = T1 + timedelta(seconds=8)
TYPES = [t.value for t in DiscrepancyType]
IB_SCHEMA = {"account": pl.String, "conid": pl.Int64, "symbol": pl.String, "position": pl.Float64}
DELTA_SCHEMA = {**IB_SCHEMA, "timestamp": pl.Datetime("us", "UTC")}


def _rows(types: dict[int, str]) -> pl.DataFrame:
    """A `reconcile()`-shaped frame with one row per conid of `types`."""
    ib = []
    delta = []
    for conid, kind in types.items():
        # The smallest book that makes each verdict for this conid.
        ib_q, delta_q, age = {
            "NAKED_POSITION": (None, 1.0, 0),
            "MISSING_FROM_DELTA": (1.0, None, 0),
            "POSITION_MISMATCH": (2.0, 1.0, 0),
            "STALE_DATA": (1.0, 1.0, 3600),
        }[kind]
        if ib_q is not None:
            ib.append({"account": "DU1", "conid": conid, "symbol": "SPY", "position": ib_q})
        if delta_q is not None:
            delta.append(
                {
                    "account": "DU1",
                    "conid": conid,
                    "symbol": "SPY",
                    "position": delta_q,
                    "timestamp": T1 - timedelta(seconds=age),
                }
            )
    return _judge(ib, delta, T1)


def _judge(ib: list[dict], delta: list[dict], as_of: datetime) -> pl.DataFrame:
    ib_frame = pl.DataFrame(ib, schema=IB_SCHEMA)
    delta_frame = pl.DataFrame(delta, schema=DELTA_SCHEMA)
    return reconcile(
        ib_frame.with_columns(sec_type=pl.lit("OPT")),
        delta_frame.with_columns(sec_type=pl.lit("OPT")),
        as_of=as_of,
        stale_after=timedelta(minutes=30),
    )


@pytest.mark.parametrize(("first", "second"), list(itertools.product(TYPES, [None, *TYPES])))
def test_a_verdict_survives_only_when_the_second_snapshot_repeats_it(
    first: str, second: str | None
) -> None:
    judged = _rows({7: first})
    again = _rows({7: second} if second else {})
    out = confirm(judged, again, confirmed_at=T2)
    assert out.columns == judged.columns
    assert out.height == 1
    row = out.row(0, named=True)
    if first == second:
        assert row == judged.row(0, named=True)
        return
    assert (row["type"], row["severity"]) == (RESOLVED_IN_FLIGHT, INFO)
    # The near miss says what it was and what the second look found.
    assert row["details"].startswith(f"{first} did not survive the confirming snapshot (")
    assert (
        "IB and Delta agreed at 10:05:08" if second is None else f"{second} at 10:05:08"
    ) in row["details"]
    # Quantities are the first snapshot's: what the window saw.
    keep = ["account", "conid", "ib_position", "delta_position", "as_of"]
    assert {k: row[k] for k in keep} == {k: judged.row(0, named=True)[k] for k in keep}


def test_only_the_first_judgments_keys_are_reported_in_its_order() -> None:
    judged = _rows({1: "NAKED_POSITION", 2: "POSITION_MISMATCH", 3: "STALE_DATA"})
    again = _rows({1: "NAKED_POSITION", 3: "STALE_DATA", 4: "NAKED_POSITION"})
    out = confirm(judged, again, confirmed_at=T2)
    assert out.select("conid", "type").rows() == [
        (1, "NAKED_POSITION"),
        (2, RESOLVED_IN_FLIGHT),
        (3, "STALE_DATA"),
    ]
    assert confirm(judged.clear(), again, confirmed_at=T2).is_empty()


def test_only_a_critical_row_asks_for_confirmation() -> None:
    assert has_critical(_rows({1: "NAKED_POSITION", 2: "STALE_DATA"}))
    for kind in ("MISSING_FROM_DELTA", "POSITION_MISMATCH", "STALE_DATA"):
        assert not has_critical(_rows({1: kind}))
    assert not has_critical(_rows({}))


# --- fills in flight against a model ------------------------------------------------------


@dataclass(frozen=True)
class Leg:
    opening: bool  # a fill that opens the leg (else one that closes it)
    fill_s: float  # the fill's time, relative to the first snapshot
    lag_s: float | None  # the streamer's write lag; None: it never wrote the fill


def _ib_open(leg: Leg, t: float) -> bool:
    filled = leg.fill_s <= t
    return filled if leg.opening else not filled


def _delta_open(leg: Leg, as_of: float, read_at: float) -> bool:
    """What an as-of read at `read_at` sees: the fill row counts once it is written
    (at fill + lag) and its event time (the fill's) is not after `as_of`."""
    seen = leg.lag_s is not None and leg.fill_s + leg.lag_s <= read_at and leg.fill_s <= as_of
    return seen if leg.opening else not seen


def _naked(leg: Leg, t: float, settle: float) -> bool:
    return not _ib_open(leg, t) and _delta_open(leg, t, t + settle)


def _book(legs: list[Leg], t: float, settle: float) -> tuple[list[dict], list[dict]]:
    """IB's answer at `t` and Delta's rows as a read at `t + settle` finds them."""
    at = T1 + timedelta(seconds=t)
    ib, delta = [], []
    for conid, leg in enumerate(legs):
        row = {"account": "DU1", "conid": conid, "symbol": "SPY"}
        if _ib_open(leg, t):
            ib.append({**row, "position": -2.0})
        # The leg's history: opened long ago (a closing fill) or never (an opening one).
        if not leg.opening:
            delta.append({**row, "position": -2.0, "timestamp": T1 - timedelta(minutes=10)})
        written = leg.lag_s is not None and leg.fill_s + leg.lag_s <= t + settle
        fill_at = T1 + timedelta(seconds=leg.fill_s)
        if written and fill_at <= at:
            delta.append({**row, "position": -2.0 if leg.opening else 0.0, "timestamp": fill_at})
    latest = (
        pl.DataFrame(delta, schema=DELTA_SCHEMA)
        .sort("timestamp")
        .unique(["account", "conid"], keep="last")
    )
    return ib, latest.to_dicts()


legs = st.lists(
    st.builds(
        Leg,
        opening=st.booleans(),
        fill_s=st.floats(-20, 20, allow_nan=False),
        lag_s=st.one_of(st.none(), st.floats(0, 15, allow_nan=False)),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(legs=legs, settle=st.sampled_from([0.0, 3.0]), confirm_after=st.sampled_from([5.0, 8.0]))
def test_a_leg_is_naked_iff_it_is_naked_at_both_snapshots(
    legs: list[Leg], settle: float, confirm_after: float
) -> None:
    t2 = confirm_after
    first = _judge(*_book(legs, 0.0, settle), T1)
    second = _judge(*_book(legs, t2, settle), T1 + timedelta(seconds=t2))
    out = confirm(first, second, confirmed_at=T1 + timedelta(seconds=t2))
    verdict = dict(zip(out["conid"], out["type"], strict=True))
    for conid, leg in enumerate(legs):
        naked_first, naked_second = _naked(leg, 0.0, settle), _naked(leg, t2, settle)
        assert (verdict.get(conid) == "NAKED_POSITION") == (naked_first and naked_second), leg
        if naked_first and not naked_second:
            assert verdict[conid] == RESOLVED_IN_FLIGHT, leg
        # A close the streamer never wrote, filled before the first snapshot: still NAKED.
        if not leg.opening and leg.lag_s is None and leg.fill_s <= 0:
            assert verdict[conid] == "NAKED_POSITION", leg
