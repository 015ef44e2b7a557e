"""The alert sensors: thin readers of Dagster's records over `v6_pipeline.alerts`.

Each keeps its cursor (where it read to, the open incidents, the undelivered alerts)
as one JSON string, so a daemon restart neither repeats nor forgets an alert. Each
tick says what it sent or why it stayed quiet (the sensor's tick log in the UI).
"""

from datetime import UTC, datetime

import dagster as dg

from v6_pipeline.alerts.delivery import Courier, ping
from v6_pipeline.alerts.state import IncidentKind
from v6_pipeline.alerts.tick import AlertCursor, run_tick
from v6_pipeline.defs.alert_feed import JOB, FeedPosition, read_feed
from v6_pipeline.defs.resources import AlertsResource, LakeResource
from v6_pipeline.run.liveness import reap_dead_runs

# The time to page is at most one interval after a window is judged (README).
INTERVAL_S = 30


def _tick(
    context: dg.SensorEvaluationContext,
    lake: LakeResource,
    alerts: AlertsResource,
    kinds: tuple[IncidentKind, ...],
) -> dg.SkipReason:
    settings = alerts.get_settings()
    store = lake.get_lake()
    now = datetime.now(UTC)
    cursor = AlertCursor.from_json(context.cursor)
    observations, position = read_feed(
        context.instance, store, FeedPosition.from_json(cursor.position), now=now
    )
    cursor, report = run_tick(
        cursor,
        observations,
        position=position.to_json(),
        now=now,
        policy=settings.policy(*kinds),
        courier=Courier(settings.urls, give_up_after=settings.give_up_after, log=context.log),
        ui_url=settings.ui_url,
        lake_dir=store.lake_dir,
        log=context.log,
    )
    context.update_cursor(cursor.to_json())
    return dg.SkipReason(f"{len(observations)} new observation(s); {report.summary()}")


@dg.sensor(
    name="discrepancy_alert_sensor",
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Pages once when a live window has naked positions (and, with "
        "V6_ALERT_MIN_SEVERITY=warning, other discrepancies), again when the set changes "
        "or after V6_ALERT_REMIND_S, and says when it is resolved. Backfills never page."
    ),
)
def discrepancy_alert_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, alerts: AlertsResource
) -> dg.SkipReason:
    return _tick(context, lake, alerts, (IncidentKind.NAKED, IncidentKind.WARNING))


@dg.sensor(
    name="reconciliation_failure_sensor",
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Pages once when reconciliation runs start failing (IB unreachable, client id in "
        "use, timeouts, lake errors: one incident per cause, not per run), and when a run "
        "succeeds again. IB-side failures inside V6_IB_QUIET_WINDOWS page only if they "
        "outlast it. Also fails runs whose process died, freeing their pool slot."
    ),
)
def reconciliation_failure_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, alerts: AlertsResource
) -> dg.SkipReason:
    for dead in reap_dead_runs(context.instance, JOB):
        context.log.warning(f"run {dead.run_id} died without finishing; marked failed")
    return _tick(context, lake, alerts, (IncidentKind.PIPELINE,))


@dg.sensor(
    name="reconciliation_silence_sensor",
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Pages when no window has been judged for V6_ALERT_SILENCE_S (the schedule is off, "
        "every run is skipped or failing). After each healthy tick it pings "
        "V6_HEARTBEAT_URL, a dead-man's switch for the daemon itself."
    ),
)
def reconciliation_silence_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, alerts: AlertsResource
) -> dg.SkipReason:
    result = _tick(context, lake, alerts, (IncidentKind.SILENCE,))
    heartbeat = alerts.get_settings().heartbeat_url
    if heartbeat:
        ping(heartbeat, log=context.log)
    return result


ALERT_SENSORS = [
    discrepancy_alert_sensor,
    reconciliation_failure_sensor,
    reconciliation_silence_sensor,
]
