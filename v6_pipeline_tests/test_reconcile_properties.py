"""`reconcile()` against a deliberately naive model of the contract's words.

The model loops over keys in plain Python and compares exact decimals, so float
noise in `reconcile()` would show up as a disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from v6_pipeline.reconcile import reconcile

AS_OF = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)
ACCOUNTS = ["DU1", "DU2"]
SEC_TYPES = ["OPT", "STK", "FUT"]


@dataclass(frozen=True)
class IbRow:
    account: str
    conid: int
    sec_type: str
    milli: int  # quantity in thousandths, so the model is exact


@dataclass(frozen=True)
class DeltaRow:
    account: str
    conid: int
    sec_type: str | None
    milli: int
    age_s: int


def model(
    ib: list[IbRow],
    delta: list[DeltaRow],
    *,
    tol: Fraction,
    stale_after_s: int | None,
    scope: set[str] | None,
) -> dict[tuple[str, int], str]:
    ib_by_key = {(r.account, r.conid): r for r in ib}
    delta_by_key = {(r.account, r.conid): r for r in delta}
    out = {}
    for key in ib_by_key.keys() | delta_by_key.keys():
        i, d = ib_by_key.get(key), delta_by_key.get(key)
        # The key's sec type: IB's if IB reports it, else Delta's; unknown is in scope.
        sec_type = i.sec_type if i else d.sec_type if d else None
        if scope is not None and sec_type is not None and sec_type not in scope:
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


keys = st.tuples(st.sampled_from(ACCOUNTS), st.integers(1, 12))
# Quantities near each other and near zero, where the rules' edges are.
millis = st.one_of(
    st.integers(-3, 3), st.integers(-3000, 3000), st.sampled_from([1000, 1001, 999, 2000, 100001])
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[IbRow], list[DeltaRow], Fraction, int | None, set | None]:
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
    tol = Fraction(draw(st.sampled_from([0, 1, 2, 500, 1000])), 1000)
    stale = draw(st.sampled_from([None, 0, 60, 3600]))
    scope = draw(st.sampled_from([None, {"OPT"}, {"OPT", "STK"}, {"FUT"}]))
    return ib, delta, tol, stale, scope


@settings(max_examples=2000, deadline=None)
@given(cases())
def test_reconcile_matches_the_naive_model(
    case: tuple[list[IbRow], list[DeltaRow], Fraction, int | None, set | None],
) -> None:
    ib, delta, tol, stale_after_s, scope = case
    ib_frame = pl.DataFrame(
        {
            "account": [r.account for r in ib],
            "conid": [r.conid for r in ib],
            "symbol": ["X"] * len(ib),
            "sec_type": [r.sec_type for r in ib],
            "position": [r.milli / 1000 for r in ib],
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
            "account": [r.account for r in delta],
            "conid": [r.conid for r in delta],
            "symbol": ["X"] * len(delta),
            "sec_type": [r.sec_type for r in delta],
            "position": [r.milli / 1000 for r in delta],
            "timestamp": [AS_OF - timedelta(seconds=r.age_s) for r in delta],
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
    result = reconcile(
        ib_frame,
        delta_frame,
        as_of=AS_OF,
        abs_tol=float(tol),
        stale_after=None if stale_after_s is None else timedelta(seconds=stale_after_s),
        sec_types=scope,
    )
    got = {(r["account"], r["conid"]): r["type"] for r in result.iter_rows(named=True)}
    assert got == model(ib, delta, tol=tol, stale_after_s=stale_after_s, scope=scope)
    assert result.height == len(got)  # one row per key
    assert (result["severity"] == "critical").to_list() == [
        t == "NAKED_POSITION" for t in result["type"]
    ]
