"""One window's judgment from its stored inputs: which accounts, which rows, what verdict.

Pure given its inputs (no I/O): the assets read and write the tables around it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Protocol

import polars as pl

from v6_pipeline.confirm import RESOLVED_IN_FLIGHT, confirm
from v6_pipeline.lake import schemas
from v6_pipeline.lake.schemas import polars_schema
from v6_pipeline.lake.snapshots import StoredSnapshot
from v6_pipeline.reconcile import DiscrepancyType, reconcile, unjudged_accounts
from v6_pipeline.windowing import window_key

UTC_US = pl.Datetime("us", "UTC")
_LATEST_SCHEMA = polars_schema(schemas.DELTA_LATEST_POSITIONS)


class JudgingSettings(Protocol):
    """What counts as a discrepancy (the Dagster `ReconciliationSettings` resource)."""

    def scope(self) -> tuple[str, ...] | None: ...

    def tolerance(self) -> float: ...

    def stale_after(self) -> timedelta | None: ...


def relevant_latest(snap: StoredSnapshot, latest: pl.DataFrame) -> pl.DataFrame:
    """The Delta latest rows a window's judgment reads: every open position, and every
    key IB reported (a closed row there is a POSITION_MISMATCH, not a MISSING one).
    Closed keys IB does not report cannot make a discrepancy and are left out, so the
    stored table follows the book, not all history."""
    ib_keys = snap.positions.select("account", "conid")
    reported = latest.join(ib_keys, on=["account", "conid"], how="semi")
    rows = pl.concat([latest.filter(pl.col("position") != 0), reported]).unique(
        ["account", "conid"], keep="first", maintain_order=True
    )
    stamped = rows.with_columns(
        window_start=pl.lit(snap.window_start, UTC_US), as_of=pl.lit(snap.taken_at, UTC_US)
    )
    return stamped.select([c for c in _LATEST_SCHEMA.names() if c in stamped.columns])


@dataclass(frozen=True)
class JudgedWindow:
    snapshot: StoredSnapshot
    latest: pl.DataFrame  # what Delta believed (the stored delta_latest_positions rows)
    rows: pl.DataFrame  # the discrepancies, with window_start
    accounts: tuple[str, ...]  # the accounts judged
    unmanaged: pl.DataFrame  # Delta's open positions in accounts not judged
    live: bool  # judged while the window was the newest closed one, in a run of its own
    confirming: StoredSnapshot | None = None  # the second snapshot the rows were confirmed by

    @property
    def key(self) -> str:
        return window_key(self.snapshot.window_start)

    def naked(self) -> pl.DataFrame:
        return self.rows.filter(pl.col("type") == DiscrepancyType.NAKED_POSITION.value)

    def resolved_in_flight(self) -> pl.DataFrame:
        return self.rows.filter(pl.col("type") == RESOLVED_IN_FLIGHT)

    def confirmed_by(self, second: JudgedWindow) -> JudgedWindow:
        """This judgment, keeping only what `second` (the confirming snapshot's) repeats."""
        rows = confirm(self.rows, second.rows, confirmed_at=second.snapshot.taken_at)
        return replace(self, rows=rows, confirming=second.snapshot)


class UnmanagedAccountError(ValueError):
    """V6_ACCOUNTS names an account the gateway does not manage: judging the others
    alone would look like a clean book for the one the user asked about."""

    def __init__(self, missing: list[str], managed: tuple[str, ...], wanted: tuple[str, ...]):
        super().__init__(
            f"V6_ACCOUNTS names {', '.join(missing)}, which the gateway does not manage "
            f"(V6_ACCOUNTS={','.join(wanted)}; the gateway manages "
            f"{', '.join(managed) or 'no account'}): log in to IB with a user that manages "
            "it, or remove it from V6_ACCOUNTS"
        )
        self.missing = missing


def judged_accounts(
    managed: tuple[str, ...], account_filter: tuple[str, ...] | None
) -> tuple[str, ...]:
    """The accounts the IB answer covers: those the gateway manages, narrowed by
    V6_ACCOUNTS (trimmed, upper-cased, as the tables' accounts are). An account in
    V6_ACCOUNTS that the gateway does not manage raises `UnmanagedAccountError`."""
    managed = tuple(a.strip().upper() for a in managed)
    if account_filter is None:
        return managed
    wanted = tuple(dict.fromkeys(a.strip().upper() for a in account_filter))
    if missing := [a for a in wanted if a not in managed]:
        raise UnmanagedAccountError(missing, managed, wanted)
    return tuple(a for a in managed if a in wanted)


def judge(
    snap: StoredSnapshot,
    latest: pl.DataFrame,
    *,
    settings: JudgingSettings,
    account_filter: tuple[str, ...] | None,
    live: bool,
) -> JudgedWindow:
    accounts = judged_accounts(snap.accounts, account_filter)
    delta = latest.drop("window_start", "as_of", strict=False)
    scope, tol = settings.scope(), settings.tolerance()
    rows = reconcile(
        snap.positions,
        delta,
        as_of=snap.taken_at,
        abs_tol=tol,
        stale_after=settings.stale_after(),
        sec_types=scope,
        accounts=accounts,
    ).with_columns(window_start=pl.lit(snap.window_start, UTC_US))
    unmanaged = unjudged_accounts(delta, accounts, abs_tol=tol, sec_types=scope)
    return JudgedWindow(snap, latest, rows, accounts, unmanaged, live)
