"""The Dagster instance home (`DAGSTER_HOME`) the `v6` commands run in."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import dagster as dg
from dagster_postgres.utils import DagsterPostgresException
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from v6_pipeline.defs.assets import IB_POOL

PG_URL_SETTING = "DAGSTER_PG_URL"


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
            raise InstanceUnavailableError(_unreachable(error)) from error
    return instance


def _unreachable(error: BaseException) -> str:
    """What PostgreSQL (psycopg2) said, without Dagster's and SQLAlchemy's wrappers, and
    the setting to check; the password is never shown."""
    while error.__cause__ is not None:
        error = error.__cause__
    said = next(iter(str(error).strip().splitlines()), type(error).__name__)
    raw = os.environ.get(PG_URL_SETTING, "").strip()
    try:
        url = make_url(raw).render_as_string(hide_password=True) if raw else "not set"
    except ArgumentError:
        url = "not a database URL"
    return (
        f"cannot open the Dagster instance's PostgreSQL database ({PG_URL_SETTING}: {url}): "
        f"{said}. Check that the server is up and reachable from here, and the user, "
        f"password, host, port and database in {PG_URL_SETTING}"
    )


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
