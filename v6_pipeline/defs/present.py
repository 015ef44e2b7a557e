"""The present at a glance: the checks of `position_discrepancies` show the newest live
window, whatever runs judged the past since.

Dagster shows an unpartitioned check's newest execution, and only while that execution
belongs to the run of the asset's newest materialization or targets it
(`AssetCheckExecutionRecord.targets_latest_materialization`,
dagster/_core/storage/asset_check_execution_record.py). A run that judges past windows
writes newer materializations, and when it was launched with the checks selected (a UI
backfill is) its unevaluated checks would read "skipped": either way the present would
be greyed out by the past. So such a run re-states the present: each check's newest
evaluation from another run is logged again from this one, its metadata naming the
live run it comes from. What it re-states is never its own verdict.

While a live run is still judging, nothing is re-stated (its judgment is the present,
and an older one logged after its start would be shown in its place): the check then
reads "skipped" until the next live window, never a verdict that is not the newest.
"""

from __future__ import annotations

import dagster as dg

from v6_pipeline.defs.checks import ASSET, NAKED_CHECK
from v6_pipeline.defs.dead_runs import IN_FLIGHT
from v6_pipeline.defs.partitions import is_range_run

ORIGIN = "judged_by_run"  # metadata: the live run whose judgment an evaluation states
RESTATED = "restated_by_run"
_HISTORY = 20  # executions looked through for the newest one that tells the present
_EVALUATED = {"SUCCEEDED", "FAILED"}  # an execution record's status once evaluated


def restate_present(context: dg.AssetExecutionContext, checks: list[str]) -> list[str]:
    """Log the present of each of `checks` again from this run; the names re-stated."""
    restated = []
    for name in checks:
        evaluation = _present(context.instance, name, own_run=context.run.run_id)
        if evaluation is not None:
            context.log_event(evaluation)
            restated.append(name)
    return restated


def _present(
    instance: dg.DagsterInstance, check: str, *, own_run: str
) -> dg.AssetCheckEvaluation | None:
    """`check`'s newest verdict from another run, as this run will state it; None when
    there is none, or a live run is judging now."""
    key = dg.AssetCheckKey(dg.AssetKey(ASSET), check)
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=_HISTORY)
    for record in records:
        if record.run_id == own_run:
            continue
        if record.status.value in _EVALUATED:
            evaluation = record.evaluation
            assert isinstance(evaluation, dg.AssetCheckEvaluation)
            origin = evaluation.metadata.get(ORIGIN)
            return dg.AssetCheckEvaluation(
                asset_key=key.asset_key,
                check_name=check,
                passed=evaluation.passed,
                severity=evaluation.severity,
                description=evaluation.description,
                metadata={
                    **evaluation.metadata,
                    ORIGIN: origin or dg.MetadataValue.text(record.run_id),
                    RESTATED: dg.MetadataValue.text(own_run),
                },
            )
        run = instance.get_run_by_id(record.run_id)
        if run is None or run.status in IN_FLIGHT:
            return None  # being judged now: that judgment is the present
        if run.status == dg.DagsterRunStatus.FAILURE and not is_range_run(run.tags):
            return dg.AssetCheckEvaluation(
                asset_key=key.asset_key,
                check_name=check,
                passed=False,
                severity=(
                    dg.AssetCheckSeverity.ERROR
                    if check == NAKED_CHECK
                    else dg.AssetCheckSeverity.WARN
                ),
                description=(f"run {record.run_id} failed before judging its window: see its log"),
                metadata={
                    ORIGIN: dg.MetadataValue.text(record.run_id),
                    RESTATED: dg.MetadataValue.text(own_run),
                },
            )
        # A run that did not evaluate it and did not fail (a past run that had nothing
        # to re-state): look further back.
    return None
