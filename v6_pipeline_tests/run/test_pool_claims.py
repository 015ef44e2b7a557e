"""Runs started together take the `ib_gateway` slot one at a time (issue: two `v6
reconcile` on a fresh home both connected as client 606).

Dagster's SQLite storage claims a pool slot in several statements with no lock between
them (SQLite ignores `SELECT ... FOR UPDATE`): two processes could both be assigned the
one slot and both take it, the second overwriting the first's claim.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from v6_pipeline.defs.assets import IB_POOL
from v6_pipeline.run.instance import PoolSafeSqliteStorage, open_instance, prepare_home

CLAIMERS = 4
HOLD_S = 0.5


def claim_together(
    home: Path, out: Path, n: int, opener: str
) -> list[tuple[float, float, str, list[str], list[str]]]:
    out.mkdir()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "v6_pipeline_tests.run.pool_claimer",
                str(home),
                str(out),
                str(n),
                str(HOLD_S),
                opener,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(n)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * n, outs
    held = []
    for path in out.iterdir():
        if path.suffix == ".ready":
            continue
        start, end, holders, assigned = path.read_text().split()
        held.append((float(start), float(end), path.name, holders.split(","), assigned.split(",")))
    assert len(held) == n, outs
    return sorted(held)


def assert_one_at_a_time(held: list[tuple[float, float, str, list[str], list[str]]]) -> None:
    for _, _, run_id, holders, assigned in held:
        # The storage names this run, and only it, as the slot's holder and the one run
        # the pool's queue handed its one slot to.
        assert holders == [run_id], (run_id, holders)
        assert assigned == [run_id], (run_id, assigned)
    for (_, end, first, *_), (start, _, second, *_) in itertools.pairwise(held):
        assert start >= end, f"{first} and {second} held the ib_gateway slot at once"


@pytest.mark.timeout(600)
def test_claimers_starting_together_on_a_fresh_home_hold_the_slot_one_at_a_time(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"  # fresh: no tables, no pool limit row yet
    assert_one_at_a_time(claim_together(home, tmp_path / "out", CLAIMERS, "v6"))
    info = open_instance(home).event_log_storage.get_concurrency_info(IB_POOL)
    assert info.limit == 1
    assert not info.claimed_slots
    assert not info.pending_steps


@pytest.mark.timeout(600)
def test_a_home_on_the_pool_safe_storage_serializes_the_daemons_runs_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processes that open the home as Dagster does (the daemon, its runs, the UI), not
    through `open_instance`, when its dagster.yaml names `PoolSafeSqliteStorage`."""
    home = prepare_home(tmp_path / "home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the claimers inherit it
    config = home / "dagster.yaml"
    config.write_text(config.read_text() + POOL_SAFE_STORAGE)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.get_ref().storage_data
        assert (storage.module_name, storage.class_name) == (
            PoolSafeSqliteStorage.__module__,
            PoolSafeSqliteStorage.__name__,
        )
        instance.get_runs(limit=1)  # its tables, before the claimers start
    assert_one_at_a_time(claim_together(home, tmp_path / "out", CLAIMERS, "dagster"))


POOL_SAFE_STORAGE = """
storage:
  custom:
    module: v6_pipeline.run.instance
    class: PoolSafeSqliteStorage
    config:
      base_dir:
        env: DAGSTER_HOME
"""
