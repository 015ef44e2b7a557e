"""The alert state every evaluator of a sensor shares: one row of the Dagster instance's
key-value store, written by compare-and-swap.

A sensor is evaluated by more than one process: the daemon, a restarted daemon, `v6
demo` ticking it once, two daemons on one PostgreSQL. A sensor cursor belongs to one
evaluator (`build_sensor_context` takes the caller's), so incident state kept only there
pages once per evaluator. Here, a tick reads the shared state, decides, and writes its
new state only if nobody wrote since it read (`UPDATE kvs ... WHERE value = <what it
read>`, or an INSERT the unique key refuses); the loser reads the winner's state and
decides again on it. An alert is raised by exactly one tick, and its deliveries are
leased in the same write, so no other evaluator sends them while that tick does.

The row lives in the run storage every evaluator of one instance shares (SQLite under
`DAGSTER_HOME`, or PostgreSQL), under `v6_pipeline.alerts/<sensor name>`.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
from sqlalchemy import exc as db_exc

KEY_PREFIX = "v6_pipeline.alerts/"
ATTEMPTS = 20  # writes lost to another evaluator before a tick gives up (and says so)


class LedgerContendedError(Exception):
    """Other evaluators kept writing the state: this tick changed nothing."""


class Ledger:
    """One sensor's shared alert state, as the JSON text its tick wrote."""

    def __init__(self, instance: dg.DagsterInstance, name: str) -> None:
        self.key = KEY_PREFIX + name
        self.storage = instance.run_storage

    def read(self) -> str | None:
        """The state's text; None when no tick has written it yet."""
        return self.storage.get_cursor_values({self.key}).get(self.key)

    def swap(self, old: str | None, new: str) -> bool:
        """Write `new` if the state is still `old` (None: absent); False when another
        evaluator wrote first (nothing was written)."""
        from dagster._core.storage.runs.schema import KeyValueStoreTable
        from dagster._core.storage.runs.sql_run_storage import SqlRunStorage

        storage = self.storage
        if not isinstance(storage, SqlRunStorage):  # no atomic write offered: best effort
            if self.read() != old:
                return False
            storage.set_cursor_values({self.key: new})
            return True
        table = KeyValueStoreTable
        if old is None:
            try:
                with storage.connect() as conn:
                    conn.execute(table.insert().values(key=self.key, value=new))
            except db_exc.IntegrityError:  # another evaluator created it first
                return False
            return True
        with storage.connect() as conn:
            result = conn.execute(
                table.update()
                .where(table.c.key == self.key)
                .where(table.c.value == old)
                .values(value=new)
            )
            return result.rowcount == 1

    def update(self, change: Callable[[str | None], str]) -> str:
        """Apply `change` to the current state until the write wins; the state written.
        `change` must be safe to call again on a newer state."""
        for _ in range(ATTEMPTS):
            old = self.read()
            new = change(old)
            if new == old or self.swap(old, new):
                return new
        raise LedgerContendedError(
            f"{self.key}: {ATTEMPTS} writes in a row lost to other evaluators of this sensor"
        )
