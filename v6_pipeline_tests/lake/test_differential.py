"""`read_latest` against a full read, over random histories of appends, reads and rewrites.

Appends carry random timestamps (late ones included), reads random `as_of` before and
after the checkpoint's cutoff, and rewrites (the project's upsert replacing rows,
compaction, deletes) force rebuilds. The checkpoint refresh threshold is drawn too, so
refreshes happen at random points.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from unittest import mock

from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v6_pipeline.lake import latest, read_latest, schemas
from v6_pipeline.lake.updates import append_position_updates
from v6_pipeline_tests.lake.support import T0, brute_force, history_frame

row = st.tuples(
    st.sampled_from(["DU1", "DU2"]),  # account
    st.integers(1, 5),  # conid
    st.integers(-3, 3),  # position; 0 = closed
    st.integers(0, 60),  # minute: any order, so late rows are common
    st.integers(0, 999),  # microseconds: finer than Delta's statistics
)
step = st.one_of(
    st.tuples(st.just("append"), st.lists(row, min_size=1, max_size=6)),
    st.tuples(st.just("upsert"), st.lists(row, min_size=1, max_size=3)),
    st.tuples(st.just("read"), st.integers(-1, 62)),
    st.tuples(st.just("compact"), st.none()),
    st.tuples(st.just("delete"), st.tuples(st.integers(1, 5), st.integers(0, 60))),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Refresh often, sometimes, or never after the first build; cut the tail near or far.
@given(
    steps=st.lists(step, min_size=1, max_size=12),
    refresh_rows=st.sampled_from([1, 4, 10**6]),
    tail_minutes=st.sampled_from([0, 10, 600]),
)
def test_read_latest_equals_a_full_read(steps, refresh_rows, tail_minutes):
    with (
        tempfile.TemporaryDirectory() as lake,
        mock.patch.object(latest, "REFRESH_ROWS", refresh_rows),
        mock.patch.object(latest, "TAIL_HORIZON", timedelta(minutes=tail_minutes)),
    ):
        uri = str(Path(lake) / "position_updates")
        # A history reaching minute 40, so that a checkpoint's cutoff leaves room for late rows.
        start = [("DU1", 1, 1, 0, 0), ("DU2", 2, 1, 40, 0)]
        append_position_updates(uri, history_frame(start))
        seen = {(r[0], r[1], r[3], r[4]) for r in start}
        for kind, arg in [*steps, ("read", 61)]:
            if kind == "append":  # a plain writer: keys made unique, as the project's are
                # One row per key and time, within the batch too: two quantities there are
                # an ambiguous history, which both reads refuse (lake/test_latest.py).
                fresh = []
                for r in arg:
                    if (key := (r[0], r[1], r[3], r[4])) not in seen:
                        seen.add(key)
                        fresh.append(r)
                if fresh:
                    write_deltalake(
                        uri,
                        history_frame(fresh).to_arrow().cast(schemas.POSITION_UPDATES),
                        mode="append",
                    )
            elif kind == "upsert":  # may replace stored rows: files are rewritten
                seen |= {(r[0], r[1], r[3], r[4]) for r in arg}
                append_position_updates(uri, history_frame(arg))
            elif kind == "compact":
                DeltaTable(uri).optimize.compact()
            elif kind == "delete":  # a repair of the log: rows vanish, files are rewritten
                conid, minute = arg
                since = (T0 + timedelta(minutes=minute)).isoformat()
                DeltaTable(uri).delete(f"conid = {conid} AND timestamp >= '{since}'")
            else:
                as_of = T0 + timedelta(minutes=arg)
                assert read_latest(uri, as_of=as_of).equals(brute_force(uri, as_of))
