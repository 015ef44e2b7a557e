"""Why a reconciliation run failed, in the words of the step that failed.

Shared by the shell runner (its printout) and the alert sensors (the incident's cause):
the blocking naked check failing is a verdict, not a pipeline failure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

CHECK_FAILED = "DagsterAssetCheckFailedError"


@dataclass(frozen=True)
class StepFailure:
    cause: str  # the error's type: groups failures into one incident
    message: str  # the sentence a person acts on


def step_failures(events: Iterable[dg.DagsterEvent]) -> list[StepFailure]:
    """The run's step failures other than the blocking check's, oldest first."""
    return [
        _failure(event)
        for event in events
        if event.is_step_failure and not _is_check_failure(event)
    ]


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
