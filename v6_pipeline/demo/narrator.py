"""What a person follows while `v6 demo --ui` runs, one line each: every window's verdict
as it is judged, every alert raised and where it went, and the streamer's repairs.

It reads what the pipeline records (the Dagster instance's finished runs, the lake's
`position_discrepancies` and `alert_log`, the streamer's log); Dagster's own output goes
to a file the demo names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from v6_pipeline.alerts import log as alert_log
from v6_pipeline.defs.partitions import window_start
from v6_pipeline.lake import Lake
from v6_pipeline.reconcile import DiscrepancyType

JOB = "reconciliation_job"
_DONE = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]


class Narrator:
    """`poll()` returns the new lines since the last poll; `start()` prints them every
    `every_s` seconds from a daemon thread until `stop()`."""

    def __init__(
        self,
        home: Path,
        lake_dir: Path,
        *,
        ui_url: str,
        stream_log: Path | None = None,
        seen_runs: set[str] | None = None,
        out: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.home, self.lake = home, Lake(lake_dir)
        self.lake_dir = lake_dir
        self.ui_url = ui_url.rstrip("/")
        self.stream_log = stream_log
        self.out = out
        self._runs: set[str] = set(seen_runs or ())
        self._alert_rows = 0
        self._stream_offset = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def skip_existing(self) -> None:
        """What happened before now is not news (the demo printed it)."""
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            self._runs |= {r.dagster_run.run_id for r in self._finished(instance)}
        self._alert_rows = alert_log.read(self.lake_dir).height

    def poll(self) -> list[str]:
        lines: list[str] = []
        for poll in (self._windows, self._alerts, self._repairs):
            try:
                lines.extend(poll())
            except Exception:
                continue
        return lines

    def start(self, every_s: float = 3.0) -> None:
        def loop() -> None:
            while not self._stop.wait(every_s):
                for line in self.poll():
                    self.out(line)

        self._thread = threading.Thread(target=loop, name="v6-demo-narrator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _finished(self, instance: dg.DagsterInstance) -> list[dg.RunRecord]:
        return list(
            instance.get_run_records(
                filters=dg.RunsFilter(job_name=JOB, statuses=_DONE), ascending=True, limit=50
            )
        )

    def _windows(self) -> list[str]:
        lines = []
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            for record in self._finished(instance):
                run = record.dagster_run
                if run.run_id in self._runs:
                    continue
                self._runs.add(run.run_id)
                key = run.tags.get("dagster/partition")
                if key is None:
                    continue
                lines.append(self._verdict(key, run, record))
        return lines

    def _verdict(self, key: str, run: dg.DagsterRun, record: dg.RunRecord) -> str:
        rows = self.lake.read_discrepancies(window_start=window_start(key))
        naked = rows.filter(pl.col("type") == DiscrepancyType.NAKED_POSITION.value).height
        warnings = rows.height - naked
        ended = record.end_time
        at = datetime.fromtimestamp(ended, UTC).strftime("%H:%M:%S") if ended else "--:--:--"
        link = f"{self.ui_url}/runs/{run.run_id}"
        if naked:
            verdict = f"CRITICAL: {naked} naked position(s)"
        elif run.status == dg.DagsterRunStatus.FAILURE:
            verdict = "FAILED (the run's page says why)"
        else:
            verdict = "OK"
        more = f", {warnings} warning(s)" if warnings and (naked or verdict == "OK") else ""
        return f"{at} UTC  window {key}: {verdict}{more}  {link}"

    def _alerts(self) -> list[str]:
        rows = alert_log.read(self.lake_dir)
        new = rows.slice(self._alert_rows)
        self._alert_rows = rows.height
        lines = []
        for row in new.iter_rows(named=True):
            at = row["sent_at"].strftime("%H:%M:%S")
            if row["status"] == "raised":
                lines.append(f"{at} UTC  alert {row['kind']}: {row['title']}")
            elif row["delivered"]:
                lines.append(f"{at} UTC    -> {row['url']}: delivered")
            else:
                lines.append(f"{at} UTC    -> {row['url']}: not delivered ({row['error']})")
        return lines

    def _repairs(self) -> list[str]:
        if self.stream_log is None or not self.stream_log.exists():
            return []
        with self.stream_log.open("rb") as f:
            f.seek(self._stream_offset)
            text = f.read()
        cut = text.rfind(b"\n") + 1  # whole lines only
        self._stream_offset += cut
        lines = text[:cut].decode(errors="replace").splitlines()
        repairs = [line[line.index("repair: ") :] for line in lines if "repair: " in line]
        return [f"v6 stream: {repair}" for repair in repairs]
