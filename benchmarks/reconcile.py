"""`reconcile()` against the original plan's dict loop, on the same data.

    python benchmarks/reconcile.py [--keys 10000 100000 1000000] [--repeat 3]

Each size: IB and Delta books of N keys over two accounts where ~2% of keys
disagree (every discrepancy type). Prints the best of `--repeat` runs for both and
their ratio. The plan's loop is given a head start: it keys by conid alone and
builds bare dicts, doing less than the contract asks, and still is the slower.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from v6_pipeline.reconcile import reconcile

AS_OF = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)


def books(n: int, seed: int = 7) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    conids = np.arange(n, dtype=np.int64) + 100_000
    accounts = np.where(rng.random(n) < 0.5, "DU111", "DU222")
    qty = rng.integers(-20, 21, n).astype(np.float64)
    qty[qty == 0] = 1.0
    ib = pl.DataFrame(
        {
            "account": accounts,
            "conid": conids,
            "symbol": "SPY",
            "sec_type": "OPT",
            "position": qty,
        }
    )
    delta_qty = qty.copy()
    roll = rng.random(n)
    delta_qty[roll < 0.005] += 1  # mismatches
    delta = pl.DataFrame(
        {
            "account": accounts,
            "conid": conids,
            "symbol": "SPY",
            "sec_type": "OPT",
            "position": delta_qty,
            "timestamp": [AS_OF - timedelta(hours=1)] * n,
        }
    ).with_columns(pl.col("timestamp").cast(pl.Datetime("us", "UTC")))
    ib = ib.filter(pl.Series(~((roll >= 0.005) & (roll < 0.01))))  # naked
    delta = delta.filter(pl.Series(~((roll >= 0.01) & (roll < 0.015))))  # missing
    return ib, delta


def plan_dict_loop(ib: pl.DataFrame, delta: pl.DataFrame) -> list[dict]:
    """The plan's algorithm: dicts by conid and three Python loops."""
    ib_map = {r["conid"]: r for r in ib.iter_rows(named=True)}
    delta_map = {r["conid"]: r for r in delta.iter_rows(named=True)}
    out = []
    for conid, pos in ib_map.items():
        if conid not in delta_map:
            out.append({"type": "MISSING_FROM_DELTA", "conid": conid, "ib": pos["position"]})
    for conid, pos in delta_map.items():
        if conid not in ib_map:
            out.append({"type": "NAKED_POSITION", "conid": conid, "delta": pos["position"]})
    for conid in ib_map.keys() & delta_map.keys():
        a, b = ib_map[conid]["position"], delta_map[conid]["position"]
        if abs(a - b) > 0.001:
            out.append({"type": "POSITION_MISMATCH", "conid": conid, "ib": a, "delta": b})
    return out


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(f"polars {pl.__version__}, threads {pl.thread_pool_size()}, best of {args.repeat}")
    header = f"{'keys':>10} {'reconcile()':>12} {'plan loop':>12} {'ratio':>8} {'rows':>8}"
    print(header)
    print("-" * len(header))
    for n in args.keys:
        ib, delta = books(n)
        ours, result = best_of(
            args.repeat, lambda ib=ib, delta=delta: reconcile(ib, delta, as_of=AS_OF)
        )
        theirs, _ = best_of(args.repeat, lambda ib=ib, delta=delta: plan_dict_loop(ib, delta))
        assert isinstance(result, pl.DataFrame)
        print(
            f"{n:>10,} {ours * 1000:>10.1f}ms {theirs * 1000:>10.1f}ms "
            f"{theirs / ours:>7.1f}x {result.height:>8,}"
        )


if __name__ == "__main__":
    main()
