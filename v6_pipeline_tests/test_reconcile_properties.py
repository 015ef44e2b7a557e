"""`reconcile()` and `unjudged_accounts()` against a deliberately naive model of the
contract's words.

The model loops over keys in plain Python and compares exact decimals, so float
noise in `reconcile()` would show up as a disagreement.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import TypeVar

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from v6_pipeline.reconcile import reconcile, unjudged_accounts

AS_OF = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)
ACCOUNTS = ["DU1", "DU2", "DU3"]
SEC_TYPES = ["OPT", "STK", "FUT"]
NON_FINITE = [math.inf, -math.inf, math.nan]


@dataclass(frozen=True)
class IbRow:
    account: str
    conid: int
    sec_type: str
    milli: int | float  # quantity in thousandths, so the model is exact; float = NaN/±inf


@dataclass(frozen=True)
class DeltaRow:
    account: str
    conid: int
    sec_type: str | None
    milli: int | float
    age_s: int


@dataclass(frozen=True)
class Case:
    ib: list[IbRow]
    delta: list[DeltaRow]
    tol: Fraction
    stale_after_s: int | None
    scope: set[str] | None
    accounts: set[str] | None  # the accounts the IB answer covers; None = all


def bad_data(case: Case) -> str | None:
    """The error the contract asks for: the first side with a non-finite quantity."""
    for side, rows in (("ib", case.ib), ("delta_latest", case.delta)):
        bad = sum(not math.isfinite(r.milli) for r in rows)
        if bad:
            return f"{side} has {bad} row(s) with a non-finite 'position'"
    return None


def in_scope(sec_type: str | None, scope: set[str] | None) -> bool:
    return scope is None or sec_type is None or sec_type in scope


def model(case: Case) -> dict[tuple[str, int], str]:
    ib_by_key = {(r.account, r.conid): r for r in case.ib}
    delta_by_key = {(r.account, r.conid): r for r in case.delta}
    tol, stale_after_s = case.tol, case.stale_after_s
    out = {}
    for key in ib_by_key.keys() | delta_by_key.keys():
        # IB was not asked about other accounts: nothing there is judged.
        if case.accounts is not None and key[0] not in case.accounts:
            continue
        i, d = ib_by_key.get(key), delta_by_key.get(key)
        # The key's sec type: IB's if IB reports it, else Delta's; unknown is in scope.
        if not in_scope(i.sec_type if i else d.sec_type if d else None, case.scope):
            continue
        ib_q = Fraction(i.milli, 1000) if i else Fraction(0)
        delta_q = Fraction(d.milli, 1000) if d else Fraction(0)
        ib_open = abs(ib_q) > tol
        delta_open = d is not None and abs(delta_q) > tol
        if not ib_open and delta_open:
            out[key] = "NAKED_POSITION"
        elif ib_open and d is None:
            out[key] = "MISSING_FROM_DELTA"
        elif ib_open and abs(ib_q - delta_q) > tol:
            out[key] = "POSITION_MISMATCH"
        elif ib_open and stale_after_s is not None and d is not None and d.age_s > stale_after_s:
            out[key] = "STALE_DATA"
    return out


def unjudged_model(case: Case, accounts: set[str]) -> list[tuple[str, int, float]]:
    """Delta's open, in-scope keys outside `accounts` (Delta's sec type decides)."""
    return sorted(
        (d.account, d.conid, d.milli / 1000)
        for d in case.delta
        if d.account not in accounts
        and abs(Fraction(d.milli, 1000)) > case.tol
        and in_scope(d.sec_type, case.scope)
    )


keys = st.tuples(st.sampled_from(ACCOUNTS), st.integers(1, 12))
# Quantities near each other and near zero, where the rules' edges are.
millis = st.one_of(
    st.integers(-3, 3), st.integers(-3000, 3000), st.sampled_from([1000, 1001, 999, 2000, 100001])
)


Row = TypeVar("Row", IbRow, DeltaRow)


def poisoned(draw: st.DrawFn, rows: list[Row]) -> list[Row]:
    """Rarely, one row's quantity made NaN or ±inf: bad data on that side."""
    if not rows or draw(st.integers(0, 9)) != 0:
        return rows
    at = draw(st.integers(0, len(rows) - 1))
    bad = dataclasses.replace(rows[at], milli=draw(st.sampled_from(NON_FINITE)))
    return [*rows[:at], bad, *rows[at + 1 :]]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    ib_keys = draw(st.lists(keys, unique=True, max_size=10))
    delta_keys = draw(st.lists(keys, unique=True, max_size=10))
    ib = [IbRow(a, c, draw(st.sampled_from(SEC_TYPES)), draw(millis)) for a, c in ib_keys]
    delta = [
        DeltaRow(
            a,
            c,
            draw(st.sampled_from([*SEC_TYPES, None])),
            draw(millis),
            draw(st.sampled_from([0, 59, 60, 61, 3600, 86400])),
        )
        for a, c in delta_keys
    ]
    return Case(
        ib=poisoned(draw, ib),
        delta=poisoned(draw, delta),
        tol=Fraction(draw(st.sampled_from([0, 1, 2, 500, 1000])), 1000),
        stale_after_s=draw(st.sampled_from([None, 0, 60, 3600])),
        scope=draw(st.sampled_from([None, {"OPT"}, {"OPT", "STK"}, {"FUT"}])),
        accounts=draw(st.one_of(st.none(), st.sets(st.sampled_from(ACCOUNTS)))),
    )


def frames(case: Case) -> tuple[pl.DataFrame, pl.DataFrame]:
    ib_frame = pl.DataFrame(
        {
            "account": [r.account for r in case.ib],
            "conid": [r.conid for r in case.ib],
            "symbol": ["X"] * len(case.ib),
            "sec_type": [r.sec_type for r in case.ib],
            "position": [r.milli / 1000 for r in case.ib],
        },
        schema={
            "account": pl.String,
            "conid": pl.Int64,
            "symbol": pl.String,
            "sec_type": pl.String,
            "position": pl.Float64,
        },
    )
    delta_frame = pl.DataFrame(
        {
            "account": [r.account for r in case.delta],
            "conid": [r.conid for r in case.delta],
            "symbol": ["X"] * len(case.delta),
            "sec_type": [r.sec_type for r in case.delta],
            "position": [r.milli / 1000 for r in case.delta],
            "timestamp": [AS_OF - timedelta(seconds=r.age_s) for r in case.delta],
        },
        schema={
            "account": pl.String,
            "conid": pl.Int64,
            "symbol": pl.String,
            "sec_type": pl.String,
            "position": pl.Float64,
            "timestamp": pl.Datetime("us", "UTC"),
        },
    )
    return ib_frame, delta_frame


@settings(max_examples=2000, deadline=None)
@given(cases())
def test_reconcile_matches_the_naive_model(case: Case) -> None:
    ib_frame, delta_frame = frames(case)
    judge = {
        "as_of": AS_OF,
        "abs_tol": float(case.tol),
        "stale_after": None
        if case.stale_after_s is None
        else timedelta(seconds=case.stale_after_s),
        "sec_types": case.scope,
    }
    if (error := bad_data(case)) is not None:
        with pytest.raises(ValueError, match=f"^{re.escape(error)}"):
            reconcile(ib_frame, delta_frame, **judge, accounts=case.accounts)
        return

    result = reconcile(ib_frame, delta_frame, **judge, accounts=case.accounts)
    got = {(r["account"], r["conid"]): r["type"] for r in result.iter_rows(named=True)}
    assert got == model(case)
    assert result.height == len(got)  # one row per key
    assert (result["severity"] == "critical").to_list() == [
        t == "NAKED_POSITION" for t in result["type"]
    ]

    if case.accounts is not None:
        unjudged = unjudged_accounts(
            delta_frame, case.accounts, abs_tol=float(case.tol), sec_types=case.scope
        )
        assert unjudged.select("account", "conid", "position").rows() == unjudged_model(
            case, case.accounts
        )
