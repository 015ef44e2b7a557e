"""`_overlay`, the merge a steady read answers with: pure, checked against a sort."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from v6_pipeline.lake.latest import _overlay
from v6_pipeline.lake.source import POSITION_KEY

keys = st.sets(st.tuples(st.sampled_from(["", "A", "B", "DU1"]), st.integers(-3, 12)))


def frame(found: set[tuple[str, int]], position: float) -> pl.DataFrame:
    ordered = sorted(found)
    return pl.DataFrame(
        {
            "account": [k[0] for k in ordered],
            "conid": [k[1] for k in ordered],
            "position": [position] * len(ordered),
        },
        schema={"account": pl.String, "conid": pl.Int64, "position": pl.Float64},
    )


@given(base_keys=keys, new_keys=keys)
def test_overlay_equals_replacing_and_sorting(base_keys, new_keys):
    base, rows = frame(base_keys, 0.0), frame(new_keys, 1.0)
    expected = pl.concat([base.join(rows, on=POSITION_KEY, how="anti"), rows]).sort(POSITION_KEY)

    kept = base.clone()

    got = _overlay(base, base.select(pl.struct(POSITION_KEY)).to_series(), rows)

    assert got.equals(expected)
    assert base.equals(kept)  # the next answer of a sweep starts from it again
