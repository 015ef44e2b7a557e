"""The contract's classification table, row by row, and its edges."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from v6_pipeline.reconcile import (
    DISCREPANCY_SCHEMA,
    DiscrepancyType,
    reconcile,
    unjudged_accounts,
)

AS_OF = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)
EARLIER = AS_OF - timedelta(hours=2)

NAKED = DiscrepancyType.NAKED_POSITION.value
MISSING = DiscrepancyType.MISSING_FROM_DELTA.value
MISMATCH = DiscrepancyType.POSITION_MISMATCH.value
STALE = DiscrepancyType.STALE_DATA.value


def ib_frame(*rows: tuple[str, int, float] | tuple[str, int, float, str]) -> pl.DataFrame:
    """IB rows as (account, conid, position[, sec_type])."""
    return pl.DataFrame(
        {
            "account": [r[0] for r in rows],
            "conid": [r[1] for r in rows],
            "symbol": ["SPY"] * len(rows),
            "sec_type": [r[3] if len(r) > 3 else "OPT" for r in rows],
            "position": [float(r[2]) for r in rows],
        },
        schema={
            "account": pl.String,
            "conid": pl.Int64,
            "symbol": pl.String,
            "sec_type": pl.String,
            "position": pl.Float64,
        },
    )


def delta_frame(
    *rows: tuple[str, int, float] | tuple[str, int, float, datetime],
    sec_types: list[str | None] | None = None,
) -> pl.DataFrame:
    """Delta latest rows as (account, conid, position[, timestamp])."""
    frame = pl.DataFrame(
        {
            "account": [r[0] for r in rows],
            "conid": [r[1] for r in rows],
            "symbol": ["SPY"] * len(rows),
            "position": [float(r[2]) for r in rows],
            "timestamp": [r[3] if len(r) > 3 else EARLIER for r in rows],
        },
        schema={
            "account": pl.String,
            "conid": pl.Int64,
            "symbol": pl.String,
            "position": pl.Float64,
            "timestamp": pl.Datetime("us", "UTC"),
        },
    )
    if sec_types is not None:
        frame = frame.with_columns(sec_type=pl.Series(sec_types, dtype=pl.String))
    return frame


def kinds(result: pl.DataFrame) -> dict[tuple[str, int], str]:
    return {(r["account"], r["conid"]): r["type"] for r in result.iter_rows(named=True)}


# One case per row of the contract's table, plus its edges. (ib rows, delta rows, expected)
CASES = {
    "naked: IB absent, Delta open": ([], [("A", 1, 3)], {("A", 1): NAKED}),
    "naked: IB closed today (0), Delta open": ([("A", 1, 0)], [("A", 1, -2)], {("A", 1): NAKED}),
    "naked: IB within tolerance of 0": ([("A", 1, 0.0005)], [("A", 1, 1)], {("A", 1): NAKED}),
    "missing: IB open, no Delta row": ([("A", 1, 5)], [], {("A", 1): MISSING}),
    "mismatch: both open, differ": ([("A", 1, 5)], [("A", 1, 4)], {("A", 1): MISMATCH}),
    "mismatch: Delta closed to 0, IB open": ([("A", 1, 2)], [("A", 1, 0)], {("A", 1): MISMATCH}),
    "mismatch: sign flipped": ([("A", 1, -2)], [("A", 1, 2)], {("A", 1): MISMATCH}),
    "equal: no row": ([("A", 1, 5)], [("A", 1, 5)], {}),
    "closed both sides: no row": ([("A", 1, 0)], [("A", 1, 0)], {}),
    "closed in Delta, absent in IB: no alarm": ([], [("A", 1, 0)], {}),
    "closed in IB, absent in Delta: no row": ([("A", 1, 0)], [], {}),
    "Delta within tolerance of 0 is closed": ([], [("A", 1, 0.001)], {}),
    "difference of exactly abs_tol is not a mismatch": (
        [("A", 1, 100.001)],
        [("A", 1, 100.0)],
        {},
    ),
    "difference just over abs_tol is a mismatch": (
        [("A", 1, 100.0011)],
        [("A", 1, 100.0)],
        {("A", 1): MISMATCH},
    ),
    "fractional quantities equal": ([("A", 1, 0.5)], [("A", 1, 0.5)], {}),
    "one conid in two accounts, judged apart": (
        [("A", 1, 2), ("B", 1, 2)],
        [("A", 1, 2), ("B", 1, 3), ("C", 1, 1)],
        {("B", 1): MISMATCH, ("C", 1): NAKED},
    ),
    "empty inputs": ([], [], {}),
}


@pytest.mark.parametrize(("ib_rows", "delta_rows", "expected"), CASES.values(), ids=CASES.keys())
def test_contract_table(
    ib_rows: list[tuple[str, int, float]],
    delta_rows: list[tuple[str, int, float]],
    expected: dict[tuple[str, int], str],
) -> None:
    result = reconcile(ib_frame(*ib_rows), delta_frame(*delta_rows), as_of=AS_OF)
    assert kinds(result) == expected


def test_naked_is_critical_and_first() -> None:
    result = reconcile(
        ib_frame(("A", 2, 5), ("A", 3, 1)),
        delta_frame(("A", 1, 3), ("A", 3, 2)),
        as_of=AS_OF,
    )
    assert result["type"].to_list() == [NAKED, MISSING, MISMATCH]
    assert result["severity"].to_list() == ["critical", "warning", "warning"]


class TestStale:
    def test_disabled_by_default(self) -> None:
        old = AS_OF - timedelta(days=30)
        result = reconcile(ib_frame(("A", 1, 5)), delta_frame(("A", 1, 5, old)), as_of=AS_OF)
        assert result.is_empty()

    @pytest.mark.parametrize(
        ("age", "expected"),
        [
            (timedelta(hours=1), {}),  # exactly as_of - stale_after: not stale
            (timedelta(hours=1, microseconds=1), {("A", 1): STALE}),
            (timedelta(minutes=59), {}),
        ],
    )
    def test_boundary(self, age: timedelta, expected: dict[tuple[str, int], str]) -> None:
        result = reconcile(
            ib_frame(("A", 1, 5)),
            delta_frame(("A", 1, 5, AS_OF - age)),
            as_of=AS_OF,
            stale_after=timedelta(hours=1),
        )
        assert kinds(result) == expected

    def test_mismatch_wins_over_stale(self) -> None:
        old = AS_OF - timedelta(days=2)
        result = reconcile(
            ib_frame(("A", 1, 5)),
            delta_frame(("A", 1, 4, old)),
            as_of=AS_OF,
            stale_after=timedelta(hours=1),
        )
        assert kinds(result) == {("A", 1): MISMATCH}

    def test_closed_on_both_sides_is_never_stale(self) -> None:
        old = AS_OF - timedelta(days=2)
        result = reconcile(
            ib_frame(("A", 1, 0)),
            delta_frame(("A", 1, 0, old)),
            as_of=AS_OF,
            stale_after=timedelta(hours=1),
        )
        assert result.is_empty()


class TestScope:
    def test_out_of_scope_ib_rows_are_ignored(self) -> None:
        result = reconcile(ib_frame(("A", 1, 100, "STK")), delta_frame(), as_of=AS_OF)
        assert result.is_empty()

    def test_out_of_scope_delta_rows_are_ignored(self) -> None:
        result = reconcile(ib_frame(), delta_frame(("A", 1, 100), sec_types=["STK"]), as_of=AS_OF)
        assert result.is_empty()

    def test_delta_without_sec_type_column_is_all_in_scope(self) -> None:
        result = reconcile(ib_frame(), delta_frame(("A", 1, 3)), as_of=AS_OF)
        assert kinds(result) == {("A", 1): NAKED}

    def test_ib_sec_type_decides_for_a_key_delta_does_not_type(self) -> None:
        # A legacy Delta row (no sec_type) for a stock IB holds: the stock is out of
        # scope on both sides; it must not surface as NAKED because IB's row was filtered.
        result = reconcile(ib_frame(("A", 1, 100, "STK")), delta_frame(("A", 1, 100)), as_of=AS_OF)
        assert result.is_empty()

    def test_wider_scope(self) -> None:
        result = reconcile(
            ib_frame(("A", 1, 100, "STK"), ("A", 2, 1, "FUT")),
            delta_frame(),
            as_of=AS_OF,
            sec_types=("OPT", "STK"),
        )
        assert kinds(result) == {("A", 1): MISSING}

    @pytest.mark.parametrize("sec_types", [None, ("*",)])
    def test_all_sec_types(self, sec_types: tuple[str, ...] | None) -> None:
        result = reconcile(
            ib_frame(("A", 1, 100, "STK"), ("A", 2, 1, "FUT")),
            delta_frame(),
            as_of=AS_OF,
            sec_types=sec_types,
        )
        assert kinds(result) == {("A", 1): MISSING, ("A", 2): MISSING}


class TestOutput:
    def test_schema_is_fixed_even_when_empty(self) -> None:
        assert reconcile(ib_frame(), delta_frame(), as_of=AS_OF).schema == DISCREPANCY_SCHEMA
        result = reconcile(ib_frame(("A", 1, 1)), delta_frame(("A", 2, 1)), as_of=AS_OF)
        assert result.schema == DISCREPANCY_SCHEMA

    def test_row_values(self) -> None:
        row = reconcile(ib_frame(("A", 1, 0)), delta_frame(("A", 1, -3)), as_of=AS_OF).row(
            0, named=True
        )
        assert row["as_of"] == AS_OF
        assert row["ib_position"] == 0.0
        assert row["delta_position"] == -3.0
        assert row["delta_updated_at"] == EARLIER
        assert row["sec_type"] == "OPT"
        assert row["symbol"] == "SPY"

    def test_missing_has_null_delta_columns(self) -> None:
        row = reconcile(ib_frame(("A", 1, 2)), delta_frame(), as_of=AS_OF).row(0, named=True)
        assert row["delta_position"] is None
        assert row["delta_updated_at"] is None
        assert row["ib_position"] == 2.0

    def test_details_read_like_a_trader(self) -> None:
        ib = ib_frame(("DU111", 500123, 0)).with_columns(
            expiry=pl.lit("20270115"), strike=pl.lit(600.0), right=pl.lit("C")
        )
        details = reconcile(ib, delta_frame(("DU111", 500123, -3)), as_of=AS_OF)["details"][0]
        for part in (
            "DU111",
            "SPY 2027-01-15 600 C",
            "conid 500123",
            "Delta Lake holds -3",
            "IB reports 0",
            EARLIER.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "check TWS",
        ):
            assert part in details

    def test_as_of_in_another_timezone_is_stored_as_utc(self) -> None:
        from zoneinfo import ZoneInfo

        local = AS_OF.astimezone(ZoneInfo("America/New_York"))
        result = reconcile(ib_frame(("A", 1, 1)), delta_frame(), as_of=local)
        assert result["as_of"][0] == AS_OF
        assert "14:05:00 UTC" in result["details"][0]


class TestBadInput:
    def test_naive_as_of(self) -> None:
        with pytest.raises(ValueError, match="naive"):
            reconcile(ib_frame(), delta_frame(), as_of=datetime(2026, 1, 1))  # noqa: DTZ001

    def test_missing_column(self) -> None:
        with pytest.raises(ValueError, match=r"delta_latest is missing required column.*timestamp"):
            reconcile(ib_frame(), delta_frame().drop("timestamp"), as_of=AS_OF)
        with pytest.raises(ValueError, match=r"ib is missing required column.*sec_type"):
            reconcile(ib_frame().drop("sec_type"), delta_frame(), as_of=AS_OF)

    def test_duplicate_keys_in_delta(self) -> None:
        with pytest.raises(ValueError, match="2 rows sharing an \\(account, conid\\) key"):
            reconcile(ib_frame(), delta_frame(("A", 1, 1), ("A", 1, 2)), as_of=AS_OF)

    def test_duplicate_keys_in_ib(self) -> None:
        with pytest.raises(ValueError, match="ib has 2 rows sharing"):
            reconcile(ib_frame(("A", 1, 1), ("A", 1, 1)), delta_frame(), as_of=AS_OF)

    @pytest.mark.parametrize("column", ["account", "conid", "position", "timestamp"])
    def test_nulls_in_delta_keys(self, column: str) -> None:
        frame = delta_frame(("A", 1, 1), ("A", 2, 1)).with_columns(
            pl.when(pl.col("conid") == 2).then(None).otherwise(pl.col(column)).alias(column)
        )
        with pytest.raises(ValueError, match=f"1 row\\(s\\) with a null '{column}'"):
            reconcile(ib_frame(), frame, as_of=AS_OF)

    def test_nulls_in_ib_position(self) -> None:
        frame = ib_frame(("A", 1, 1)).with_columns(position=pl.lit(None, pl.Float64))
        with pytest.raises(ValueError, match="ib has 1 row\\(s\\) with a null 'position'"):
            reconcile(frame, delta_frame(), as_of=AS_OF)

    def test_naive_timestamps(self) -> None:
        frame = delta_frame(("A", 1, 1)).with_columns(
            pl.col("timestamp").dt.replace_time_zone(None)
        )
        with pytest.raises(ValueError, match="timezone-aware"):
            reconcile(ib_frame(), frame, as_of=AS_OF)

    def test_negative_tolerance(self) -> None:
        with pytest.raises(ValueError, match="abs_tol"):
            reconcile(ib_frame(), delta_frame(), as_of=AS_OF, abs_tol=-1)

    def test_wrong_type(self) -> None:
        with pytest.raises(ValueError, match="wrong type"):
            reconcile(
                ib_frame(),
                delta_frame(("A", 1, 1)).with_columns(position=pl.lit("lots")),
                as_of=AS_OF,
            )

    @pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
    @pytest.mark.parametrize("side", ["ib", "delta_latest"])
    def test_non_finite_quantity_is_bad_data_not_a_verdict(self, side: str, value: float) -> None:
        # An infinite Delta quantity used to count as closed (inf > 1e-9 * inf is
        # false), hiding a naked leg; NaN crashed in a polars cast.
        ib = ib_frame(("A", 1, 2), ("A", 2, 1))
        delta = delta_frame(("A", 1, 2), ("A", 2, 1), ("B", 7, 3))
        if side == "ib":
            ib = ib.with_columns(position=pl.Series([2.0, value]))
        else:
            delta = delta.with_columns(position=pl.Series([2.0, value, value]))
        count = 1 if side == "ib" else 2
        with pytest.raises(
            ValueError,
            match=rf"^{side} has {count} row\(s\) with a non-finite 'position'.*A.*conid 2",
        ):
            reconcile(ib, delta, as_of=AS_OF)

    @pytest.mark.parametrize("abs_tol", [math.inf, math.nan, -1, "0.001", None, True])
    def test_tolerance_must_be_a_finite_number(self, abs_tol: object) -> None:
        with pytest.raises(ValueError, match=r"abs_tol must be a finite number >= 0"):
            reconcile(ib_frame(), delta_frame(("A", 1, 1)), as_of=AS_OF, abs_tol=abs_tol)  # type: ignore[arg-type]

    @pytest.mark.parametrize("stale_after", [-timedelta(seconds=1), 60, math.inf, "1h"])
    def test_stale_after_must_be_a_timedelta(self, stale_after: object) -> None:
        with pytest.raises(ValueError, match=r"stale_after must be a timedelta >= 0 or None"):
            reconcile(ib_frame(), delta_frame(), as_of=AS_OF, stale_after=stale_after)  # type: ignore[arg-type]

    def test_stale_after_reaching_before_year_one(self) -> None:
        with pytest.raises(ValueError, match=r"stale_after=.* reaches before year 1.*None"):
            reconcile(ib_frame(), delta_frame(), as_of=AS_OF, stale_after=timedelta.max)

    @pytest.mark.parametrize("accounts", ["DU111", ["DU111", 7]])
    def test_accounts_must_be_account_ids(self, accounts: object) -> None:
        with pytest.raises(ValueError, match=r"accounts must be .*account ids"):
            reconcile(ib_frame(), delta_frame(), as_of=AS_OF, accounts=accounts)  # type: ignore[arg-type]


class TestAccounts:
    """Only the accounts the IB answer covers are judged (contract, Keys and scope)."""

    def test_default_judges_every_account(self) -> None:
        result = reconcile(ib_frame(), delta_frame(("A", 1, 3), ("B", 1, 3)), as_of=AS_OF)
        assert kinds(result) == {("A", 1): NAKED, ("B", 1): NAKED}

    def test_delta_outside_accounts_is_never_naked(self) -> None:
        result = reconcile(
            ib_frame(("A", 2, 1)),
            delta_frame(("A", 1, 3), ("B", 1, 3), ("B", 2, 4)),
            as_of=AS_OF,
            accounts=["A"],
        )
        assert kinds(result) == {("A", 1): NAKED, ("A", 2): MISSING}

    def test_ib_rows_outside_accounts_are_ignored(self) -> None:
        result = reconcile(
            ib_frame(("A", 1, 3), ("B", 1, 5)),
            delta_frame(("A", 1, 3)),
            as_of=AS_OF,
            accounts={"A"},
        )
        assert result.is_empty()

    def test_no_accounts_judges_nothing(self) -> None:
        result = reconcile(
            ib_frame(("A", 1, 3)), delta_frame(("B", 1, 3)), as_of=AS_OF, accounts=[]
        )
        assert result.is_empty()
        assert result.schema == DISCREPANCY_SCHEMA

    def test_accounts_may_be_a_one_shot_iterator(self) -> None:
        result = reconcile(
            ib_frame(), delta_frame(("A", 1, 3), ("B", 1, 3)), as_of=AS_OF, accounts=iter(["B"])
        )
        assert kinds(result) == {("B", 1): NAKED}


class TestUnjudgedAccounts:
    """Delta's open, in-scope positions in accounts IB was not asked about."""

    def test_open_in_scope_positions_outside_accounts(self) -> None:
        delta = delta_frame(
            ("A", 1, 3),  # judged account
            ("B", 2, 4),  # unjudged, open
            ("B", 1, 0.0005),  # unjudged, closed within tolerance
            ("C", 3, -1),  # unjudged, out of scope
            ("C", 4, -2),  # unjudged, sec type unknown: in scope
            sec_types=["OPT", "OPT", "OPT", "STK", None],
        )
        result = unjudged_accounts(delta, ["A"], abs_tol=0.001, sec_types=("OPT",))
        assert result.to_dicts() == [
            {"account": "B", "conid": 2, "symbol": "SPY", "sec_type": "OPT", "position": 4.0},
            {"account": "C", "conid": 4, "symbol": "SPY", "sec_type": None, "position": -2.0},
        ]

    def test_every_sec_type_and_legacy_log_without_sec_type(self) -> None:
        delta = delta_frame(("B", 1, 3), ("A", 1, 3))
        result = unjudged_accounts(delta, iter(["A"]), abs_tol=0.001, sec_types=None)
        assert result.select("account", "conid", "sec_type").rows() == [("B", 1, None)]

    def test_all_covered_is_empty_with_a_fixed_schema(self) -> None:
        result = unjudged_accounts(delta_frame(("A", 1, 3)), ["A"], abs_tol=0.001, sec_types=None)
        assert result.is_empty()
        assert result.schema == pl.Schema(
            {
                "account": pl.String,
                "conid": pl.Int64,
                "symbol": pl.String,
                "sec_type": pl.String,
                "position": pl.Float64,
            }
        )

    def test_bad_input_is_rejected_like_reconcile(self) -> None:
        delta = delta_frame(("B", 1, 3)).with_columns(position=pl.lit(math.inf))
        with pytest.raises(ValueError, match=r"delta_latest has 1 row.*non-finite"):
            unjudged_accounts(delta, ["A"], abs_tol=0.001, sec_types=None)
        with pytest.raises(ValueError, match="abs_tol"):
            unjudged_accounts(delta_frame(), ["A"], abs_tol=math.nan, sec_types=None)


class TestIdentityValues:
    """One rule on both sides: trimmed, upper-cased. A typo never moves a leg out of scope."""

    @pytest.mark.parametrize(
        ("account", "sec_type"),
        [("du1", "OPT"), ("DU1 ", "OPT"), ("DU1", "opt"), (" Du1", " Opt ")],
    )
    def test_a_delta_typo_is_the_same_leg(self, account: str, sec_type: str) -> None:
        delta = delta_frame((account, 1, -2), sec_types=[sec_type])
        result = reconcile(ib_frame(), delta, as_of=AS_OF, accounts=["DU1"])
        assert kinds(result) == {("DU1", 1): NAKED}
        assert result["sec_type"].to_list() == ["OPT"]

    def test_the_same_leg_spelled_two_ways_on_one_side_is_refused(self) -> None:
        with pytest.raises(ValueError, match="sharing an \\(account, conid\\) key"):
            reconcile(ib_frame(("DU1", 1, 1), ("du1 ", 1, 1)), delta_frame(), as_of=AS_OF)

    def test_settings_are_normalised_too(self) -> None:
        delta = delta_frame(("DU1", 1, -2), sec_types=["OPT"])
        result = reconcile(ib_frame(), delta, as_of=AS_OF, accounts=[" du1"], sec_types=["opt "])
        assert kinds(result) == {("DU1", 1): NAKED}
        assert unjudged_accounts(delta, ["du1"], abs_tol=0.001, sec_types=["opt"]).is_empty()

    def test_a_blank_sec_type_is_unknown_so_in_scope(self) -> None:
        delta = delta_frame(("DU1", 1, -2), sec_types=["  "])
        assert kinds(reconcile(ib_frame(), delta, as_of=AS_OF)) == {("DU1", 1): NAKED}
