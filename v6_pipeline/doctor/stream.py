"""The last item: `v6 stream` heartbeating into `stream_status`, as the liveness check
judges it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from v6_pipeline.doctor.bounded import within
from v6_pipeline.doctor.report import Line, fail, ok
from v6_pipeline.stream.liveness import stream_liveness
from v6_pipeline.stream.status import read_stream_status


def stream_line(lake_dir: str, dead_after_s: float | None, *, timeout_s: float) -> Line:
    item = "v6 stream"
    if dead_after_s is None:
        return ok(item, "not checked: V6_STREAM_DEAD_AFTER_S is empty (the liveness check is off)")
    now = datetime.now(UTC)
    since = now - timedelta(days=1)
    rows = within(
        timeout_s, lambda: read_stream_status(lake_dir, since=since), what="reading stream_status"
    )
    judged = stream_liveness(rows, as_of=now, dead_after=timedelta(seconds=dead_after_s))
    if judged.passed:
        return ok(item, judged.description)
    return fail(item, judged.description)
