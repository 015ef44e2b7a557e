"""The Dagster instance home (`DAGSTER_HOME`) the `v6` commands run in."""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import IO, Any

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClassData
from dagster_postgres.utils import DagsterPostgresException
from sqlalchemy.exc import OperationalError

from v6_pipeline.defs.assets import IB_POOL
from v6_pipeline.defs.run_failures import database_unreachable


class InstanceUnavailableError(RuntimeError):
    """The instance's database cannot be reached or refuses the connection."""


def prepare_home(path: str | Path) -> Path:
    """Make `path` a Dagster home: an absolute, existing folder with the project's
    dagster.yaml (kept if the operator already has one there)."""
    home = Path(path).expanduser().resolve()
    if home.exists() and not home.is_dir():
        raise ValueError(f"DAGSTER_HOME={path} is a file; point it at a folder")
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        with resources.as_file(resources.files("v6_pipeline").joinpath("dagster.yaml")) as src:
            shutil.copyfile(src, config)
    return home


@contextmanager
def _exclusive(home: Path) -> Iterator[None]:
    """One process at a time sets up a fresh home: Dagster's SQLite storages create
    their tables on first use, and two first uses at once collide."""
    with (home / ".v6-init.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def open_instance(home: str | Path) -> dg.DagsterInstance:
    """The instance at `home`, its storages created once, safely, by whoever comes first.

    A database that cannot be reached or refuses the connection raises
    `InstanceUnavailableError`, a sentence naming DAGSTER_PG_URL.
    """
    path = prepare_home(home)
    with _exclusive(path):
        try:
            instance = dg.DagsterInstance.from_config(str(path))
            # Touch each storage so that its tables exist before the lock is released.
            instance.get_runs(limit=1)
            instance.event_log_storage.get_concurrency_info(IB_POOL)
        except (DagsterPostgresException, OperationalError) as error:
            raise InstanceUnavailableError(database_unreachable(error)) from error
    serialize_pool_claims(instance)
    return instance


# The event log storage's methods that read and then write the pools' slots, limits and
# queue of pending steps (the executor's claim and free, the run monitor's free).
_SLOT_WRITERS = (
    "claim_concurrency_slot",
    "free_concurrency_slot_for_step",
    "free_concurrency_slots_for_run",
    "assign_pending_steps",
    "initialize_concurrency_limit_to_default",
    "set_concurrency_slots",
    "delete_concurrency_limit",
)
_SERIALIZED = "_v6_pool_claims_serialized"


def serialize_pool_claims(instance: dg.DagsterInstance) -> None:
    """Make `instance`'s pool slot claims atomic between the processes on its SQLite home.

    Dagster (1.13, `SqlEventLogStorage.claim_concurrency_slot`) claims a pool slot in
    several statements on separate connections: is a slot unassigned? then queue this
    step as assigned; which slot is free? then write this run into it (`UPDATE ... WHERE
    id = ?`, the slot not checked again). SQLite ignores the `FOR UPDATE` on those reads
    and runs them outside any transaction, so two runs claiming at once (two `v6
    reconcile` started together, the first runs on a fresh home, two runs released by
    one free slot) are both assigned the one `ib_gateway` slot and both take it, the
    second overwriting the first's claim: both connect to IB as client 606. Here each of
    those read-then-write methods runs under one file lock next to the index database,
    so the claims queue up as the pool's limit says. Other storages, and an instance
    already serialized, are left as they are.
    """
    storage = instance.event_log_storage
    if isinstance(storage, SqliteEventLogStorage):
        _serialize(storage)


def _serialize(storage: SqliteEventLogStorage) -> None:
    if getattr(storage, _SERIALIZED, False):
        return
    lock = _slot_lock(storage.path_for_shard(INDEX_SHARD_NAME) + ".v6-pool.lock")
    for name in _SLOT_WRITERS:
        method = getattr(storage, name, None)
        if method is not None:
            setattr(storage, name, _under(lock, method))
    setattr(storage, _SERIALIZED, True)


class PoolSafeSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage with the pool slot claims of `serialize_pool_claims`,
    for every process that opens the home, not only those of `v6 reconcile` and `v6 demo`
    (the daemon's runs, the UI's launches). In the home's dagster.yaml:

        storage:
          custom:
            module: v6_pipeline.run.instance
            class: PoolSafeSqliteStorage
            config:
              base_dir: {env: DAGSTER_HOME}
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(base_dir, inst_data=inst_data)
        _serialize(self._event_log_storage)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> PoolSafeSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


def _under(lock: _SlotLock, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def serialized(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return serialized


class _SlotLock:
    """An exclusive lock between processes (flock) that a thread may take again while it
    holds it: freeing a slot assigns the next queued step, another locked method."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._threads = threading.RLock()
        self._depth = 0
        self._file: IO[str] | None = None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._depth == 0:
                self._file = _flocked(self._path)
        except BaseException:
            self._threads.release()
            raise
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        self._threads.release()


def _flocked(path: str) -> IO[str]:
    file = open(path, "a")  # noqa: SIM115 (closed by _SlotLock.__exit__)
    try:
        fcntl.flock(file, fcntl.LOCK_EX)
    except BaseException:
        file.close()
        raise
    return file


_SLOT_LOCKS: dict[str, _SlotLock] = {}
_SLOT_LOCKS_GUARD = threading.Lock()


def _slot_lock(path: str) -> _SlotLock:
    """One lock per database and process: two instances of one home in one process (a
    sensor and a test, say) must queue behind each other too, without a second flock on
    the same file blocking the thread that holds the first."""
    with _SLOT_LOCKS_GUARD:
        return _SLOT_LOCKS.setdefault(path, _SlotLock(path))


def instance_from_env() -> tuple[dg.DagsterInstance, str]:
    """The instance `DAGSTER_HOME` names, or an ephemeral one (nothing kept), and a
    sentence saying which."""
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if home:
        return open_instance(home), f"Dagster instance: {prepare_home(home)}"
    return (
        dg.DagsterInstance.ephemeral(),
        "Dagster instance: ephemeral (set DAGSTER_HOME to keep run history for the UI)",
    )
