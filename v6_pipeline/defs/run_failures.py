"""Why a reconciliation run failed, in the words of the step that failed.

Shared by the shell runner (its printout) and the alert sensors (the incident's cause):
the blocking naked check failing is a verdict, not a pipeline failure. A run whose
Dagster database went away mid-run cannot record its own failure: `instance_lost`
says so in one sentence naming DAGSTER_PG_URL, as `open_instance` does at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

PG_URL_SETTING = "DAGSTER_PG_URL"
CHECK_FAILED = "DagsterAssetCheckFailedError"


@dataclass(frozen=True)
class StepFailure:
    cause: str  # the error's type: groups failures into one incident
    message: str  # the sentence a person acts on


def step_failures(events: Iterable[dg.DagsterEvent]) -> list[StepFailure]:
    """The run's step failures other than the naked verdict's (Dagster's blocking check
    failure, or the asset's `checks.naked_failure` naming the legs), oldest first."""
    failures = (_failure(e) for e in events if e.is_step_failure and not _is_check_failure(e))
    return [failure for failure in failures if failure.cause != CHECK_FAILED]


def _is_check_failure(event: dg.DagsterEvent) -> bool:
    error = event.step_failure_data.error
    return error is not None and error.cls_name == CHECK_FAILED


def _failure(event: dg.DagsterEvent) -> StepFailure:
    """A `dg.Failure`'s description and its `error` metadata, else the innermost cause's
    message and type (not Dagster's "Error occurred while executing op" wrapper)."""
    data = event.step_failure_data
    user = data.user_failure_data
    if user is not None and user.description:
        error = user.metadata.get("error")
        return StepFailure(str(error.value) if error else "Failure", user.description)
    error = data.error
    if error is None:
        return StepFailure("StepFailure", "the step failed")
    while error.cause is not None:
        error = error.cause
    return StepFailure(error.cls_name or "Exception", error.message.strip())


def instance_lost(error: BaseException, keys: Sequence[str]) -> str | None:
    """The sentence for a run of windows `keys` whose Dagster instance database stopped
    answering mid-run (Dagster then raises out of the run: "too many retries for DB
    connection"), or None when `error` is not that. It names DAGSTER_PG_URL, its
    password masked, in `open_instance`'s words, and how to judge the window(s) once
    the database is back (a window left snapshotted and not judged is named so by every
    later judgment: `position_judgment_log`)."""
    if not _is_database_error(error):
        return None
    first, last = keys[0], keys[-1]
    which = f"window {first}" if first == last else f"windows {first} .. {last}"
    again = f"--window {first}" if first == last else f"--window {first} --to {last}"
    return (
        f"lost the Dagster instance's database during the run of {which}, so the run could "
        f"not finish: {database_unreachable(error)}; once it is back, re-run with "
        f"`v6 reconcile {again}`"
    )


def database_unreachable(error: BaseException) -> str:
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


def _is_database_error(error: BaseException) -> bool:
    """Whether `error`, or an error it wraps, is PostgreSQL (via dagster-postgres,
    SQLAlchemy or psycopg2) failing to connect or answer."""
    kinds: list[type[BaseException]] = []
    try:
        from dagster_postgres.utils import DagsterPostgresException

        kinds.append(DagsterPostgresException)
    except ImportError:  # pragma: no cover - dagster-postgres is a dependency
        pass
    from sqlalchemy.exc import InterfaceError, OperationalError

    kinds += [OperationalError, InterfaceError]
    try:
        import psycopg2

        kinds += [psycopg2.OperationalError, psycopg2.InterfaceError]
    except ImportError:  # pragma: no cover
        pass
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, tuple(kinds)):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
