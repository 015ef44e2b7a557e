"""The checks on `position_discrepancies`, named as claims that hold when all is well.

The checks tell the present: they are not partitioned, and only a live run (the newest
closed window, judged as it closes) evaluates them, so the lineage node and the Checks
tab show the newest live window (`defs/present.py`). Every window, live or past, gets
its verdicts all the same: they lead its own materialization's metadata (`verdict`,
`failed_checks`) and its row of `position_judgment_log`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg
import polars as pl

from v6_pipeline.defs import metadata as md
from v6_pipeline.defs.run_failures import CHECK_FAILED
from v6_pipeline.lake import paths
from v6_pipeline.reconcile import DiscrepancyType
from v6_pipeline.stream.liveness import StreamLiveness

ASSET = paths.POSITION_DISCREPANCIES
NAKED_CHECK = "no_naked_positions"
ACCOUNTS_CHECK = "delta_accounts_are_managed"
STREAM_CHECK = "position_stream_is_alive"
WARN_CHECKS: dict[DiscrepancyType, tuple[str, str]] = {
    DiscrepancyType.MISSING_FROM_DELTA: (
        "no_positions_missing_from_delta",
        "Every open IB position has a row in position_updates.",
    ),
    DiscrepancyType.POSITION_MISMATCH: (
        "positions_match_ib",
        "Where both sides hold a position, the quantities agree within V6_ABS_TOL.",
    ),
    DiscrepancyType.STALE_DATA: (
        "positions_are_fresh",
        "No position agrees with IB only because Delta last changed it long ago "
        "(V6_STALE_AFTER_S).",
    ),
}
_LEG_COLUMNS = ["account", "symbol", "conid", "ib_position", "delta_position", "details"]


def check_specs() -> list[dg.AssetCheckSpec]:
    """The checks, unpartitioned: Dagster rolls a partitioned check up as failed while
    any window's current evaluation failed, so the first naked window ever would keep
    the node red for good; the past is per window, in each window's metadata."""

    def spec(name: str, description: str, *, blocking: bool = False) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(name, asset=ASSET, description=description, blocking=blocking)

    return [
        spec(
            NAKED_CHECK,
            "No position that Delta believes open is absent from IB: strategies must not "
            "trade a leg that does not exist. Blocking (ERROR): the run fails, its failure "
            "naming the legs. A live candidate is confirmed by a second snapshot first; one "
            "gone by then is RESOLVED_IN_FLIGHT (severity info): shown in the table, never "
            "failing this check, never alerted.",
            blocking=True,
        ),
        *(spec(name, text) for name, text in WARN_CHECKS.values()),
        spec(
            ACCOUNTS_CHECK,
            "Every account with open positions in Delta is one the IB answer covers (the "
            "gateway manages it, and V6_ACCOUNTS, if set, names it). Positions in other "
            "accounts are never judged: connect a login that manages them, or set "
            "V6_ACCOUNTS.",
        ),
        spec(
            STREAM_CHECK,
            "`v6 stream` was alive at the window's as_of, meaning its changes reached Delta: "
            "a stream process's newest stream_status heartbeat is younger than "
            "V6_STREAM_DEAD_AFTER_S, and for no longer than that has it been away from IB's "
            "position events, kept a row waiting for its commit, or left a message it set "
            "aside (stream_dead_letters) unrepaired by a complete snapshot (set the variable "
            "empty when something else writes position_updates).",
        ),
    ]


@dataclass(frozen=True)
class Verdict:
    """One check's result for one window."""

    check: str
    passed: bool
    severity: dg.AssetCheckSeverity
    metadata: dict[str, object]
    description: str | None = None

    def result(self) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name=self.check,
            passed=self.passed,
            severity=self.severity,
            metadata=self.metadata,
            description=self.description,
        )


def window_verdicts(
    window: str,
    rows: pl.DataFrame,
    unmanaged: pl.DataFrame,
    stream: StreamLiveness | None,
    *,
    full: bool,
) -> list[Verdict]:
    """Every check's verdict for one window (`stream` None: the liveness check is off).
    With `full` (a one-window run) each verdict lists its positions as a table; a range
    run's carry counts and the description naming the naked legs, as its windows'
    materializations carry numbers only."""

    def table(name: str, frame: pl.DataFrame, columns: list[str], empty: str) -> dict[str, object]:
        return {name: md.markdown_table(frame, columns, empty=empty)} if full else {}

    naked = rows.filter(pl.col("type") == DiscrepancyType.NAKED_POSITION.value)
    verdicts = [
        Verdict(
            NAKED_CHECK,
            naked.is_empty(),
            dg.AssetCheckSeverity.ERROR,
            {
                "window": window,
                "naked_count": naked.height,
                **table("naked_positions", naked, _LEG_COLUMNS, "No naked positions."),
            },
            description=None if naked.is_empty() else _legs_sentence(naked["details"]),
        )
    ]
    for kind, (name, _) in WARN_CHECKS.items():
        found = rows.filter(pl.col("type") == kind.value)
        verdicts.append(
            Verdict(
                name,
                found.is_empty(),
                dg.AssetCheckSeverity.WARN,
                {
                    "window": window,
                    "count": found.height,
                    **table("positions", found, _LEG_COLUMNS, "None."),
                },
            )
        )
    accounts = sorted(set(unmanaged["account"])) if unmanaged.height else []
    verdicts.append(
        Verdict(
            ACCOUNTS_CHECK,
            unmanaged.is_empty(),
            dg.AssetCheckSeverity.WARN,
            {
                "window": window,
                "unjudged_accounts": dg.MetadataValue.json(accounts),
                "count": unmanaged.height,
                **table(
                    "positions",
                    unmanaged,
                    ["account", "symbol", "conid", "sec_type", "position"],
                    "Every account with open Delta positions was judged.",
                ),
            },
            description=None
            if not accounts
            else (
                f"Delta holds {unmanaged.height} open position(s) in account(s) "
                f"{', '.join(accounts)} that the IB answer does not cover, so they were not "
                "judged: connect a login that manages them, or set V6_ACCOUNTS."
            ),
        )
    )
    verdicts.append(_stream_verdict(window, stream))
    return verdicts


def _stream_verdict(window: str, stream: StreamLiveness | None) -> Verdict:
    if stream is None:
        return Verdict(
            STREAM_CHECK,
            True,
            dg.AssetCheckSeverity.WARN,
            {"window": window, "status": "off: V6_STREAM_DEAD_AFTER_S is empty"},
        )
    return Verdict(
        STREAM_CHECK,
        stream.passed,
        dg.AssetCheckSeverity.WARN,
        {"window": window, **stream.metadata()},
        description=stream.description or None,
    )


def verdict_line(verdicts: Sequence[Verdict]) -> str:
    """A window's verdict in one line, the first of its partition page: NAKED with the
    legs, WARN with the failed checks, or OK."""
    failed = [v for v in verdicts if not v.passed]
    naked = next((v for v in failed if v.check == NAKED_CHECK), None)
    if naked is not None:
        return f"NAKED: {naked.description or 'naked position(s)'}"
    if failed:
        return "WARN: " + "; ".join(f"{v.check}: {failed_sentence(v)}" for v in failed)
    return "OK: every check passed"


def failed_checks(verdicts: Sequence[Verdict]) -> dg.JsonMetadataValue:
    return dg.MetadataValue.json([v.check for v in verdicts if not v.passed])


def failed_sentence(verdict: Verdict) -> str:
    """A failed check as one line: its own description, else its claim and how many
    positions break it."""
    if verdict.description:
        return verdict.description
    claim = next((c for n, c in WARN_CHECKS.values() if n == verdict.check), None)
    count = verdict.metadata.get("count")
    if claim and count is not None:
        return f"{claim.rstrip('.')}: not so for {count} position(s)"
    return "failed"


def naked_failure(window: str, verdicts: Sequence[Verdict]) -> dg.Failure | None:
    """The step's failure when `window`'s blocking check failed, for the asset to raise
    once its results are stored: the run page's failure banner then opens with the legs
    (the sentence of each), not with Dagster's generic "1 blocking asset check failed".
    Its `error` metadata is `CHECK_FAILED`, so the alert sensors count it as the naked
    verdict (the critical incident), never as a pipeline failure. None when it passed."""
    naked = next((v for v in verdicts if v.check == NAKED_CHECK and not v.passed), None)
    if naked is None:
        return None
    return dg.Failure(
        description=f"window {window}: {naked.description or 'naked position(s)'}",
        metadata={"error": CHECK_FAILED, "check": NAKED_CHECK, "window": window},
    )


def _legs_sentence(details: Iterable[str]) -> str:
    legs = list(details)
    shown = " | ".join(legs[:3])
    more = f" | and {len(legs) - 3} more" if len(legs) > 3 else ""
    return f"{len(legs)} naked position(s): {shown}{more}"
