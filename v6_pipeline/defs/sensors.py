"""The alert sensors: thin readers of Dagster's records over `v6_pipeline.alerts`.

Each sensor's state (where it read to, the open incidents, the undelivered alerts) is
shared by every process that evaluates it (the daemon, a restarted daemon, `v6 demo`,
two daemons on one PostgreSQL): one row of the instance's key-value store, written by
compare-and-swap (`alerts.ledger`), so an incident pages exactly once. The sensor's own
cursor only says what its tick did and where that state is; the UI's tick list shows it
as `did=...,state=...,seq=...`, and the tick's skip reason (the tooltip of its "0 runs
requested" tag, and its detail dialog) says the same.

A tick that cannot read what it needs (the discrepancy sensor: the judged windows' rows
in the lake) changes nothing: no incident opens, changes or resolves, nothing is sent,
the state stays, and its text says what it could not read and which setting to check.
The next readable tick reads the same windows. The failure and silence sensors do not
read the lake, so a lake outage is still paged as failing runs.
"""

from datetime import UTC, datetime

import dagster as dg

from v6_pipeline.alerts.delivery import FIRST_ATTEMPT_WINDOW, Courier, Pending, ping
from v6_pipeline.alerts.ledger import Ledger, LedgerContendedError
from v6_pipeline.alerts.observations import Observation
from v6_pipeline.alerts.state import IncidentKind
from v6_pipeline.alerts.tick import AlertCursor, shared_tick, tick_note
from v6_pipeline.defs.alert_feed import JOB, FeedPosition, LakeUnreadableError, read_feed
from v6_pipeline.defs.dead_runs import reap_dead_runs
from v6_pipeline.defs.resources import AlertsResource, LakeResource

# The time to page is at most one interval (and the daemon's 5 s loop) after a window is
# judged (README): the discrepancy and failure sensors look every 5 s. A tick that finds
# nothing new reads a few records and writes nothing.
INTERVAL_S = 5
# The silence sensor (minutes of silence) and its heartbeat ping need no more than this.
SILENCE_INTERVAL_S = 30
DISCREPANCY = "discrepancy_alert_sensor"
FAILURE = "reconciliation_failure_sensor"
SILENCE = "reconciliation_silence_sensor"
SENSOR_NAMES = (DISCREPANCY, FAILURE, SILENCE)


def _tick(
    context: dg.SensorEvaluationContext,
    lake: LakeResource,
    alerts: AlertsResource,
    name: str,
    kinds: tuple[IncidentKind, ...],
) -> str:
    """Tick `name` on the state every evaluator of it shares; what it did, in words (also
    left in the cursor, with where that state is)."""
    settings = alerts.get_settings()
    store = lake.get_lake()
    ledger = Ledger(context.instance, name)
    legs = bool({IncidentKind.NAKED, IncidentKind.WARNING} & set(kinds))

    def read(position: str | int | None) -> tuple[list[Observation], str]:
        observations, feed = read_feed(
            context.instance,
            store,
            FeedPosition.from_json(position),
            now=datetime.now(UTC),
            legs=legs,
        )
        return observations, feed.to_json()

    try:
        cursor, report = shared_tick(
            ledger,
            read=read,
            now=lambda: datetime.now(UTC),
            policy=settings.policy(*kinds),
            courier=Courier(settings.urls, give_up_after=settings.give_up_after, log=context.log),
            ui_url=settings.ui_url,
            lake_dir=store.lake_dir,
            log=context.log,
            seed=context.cursor,  # an earlier version kept the state in the cursor
        )
    except LakeUnreadableError as exc:
        # Not a verdict: what was not read proves nothing, least of all a resolution.
        said = (
            f"judged nothing, as the judged windows' rows cannot be read: {exc}. No "
            "incident opened, changed or resolved, nothing was sent; the next tick reads "
            "the same windows again"
        )
        context.log.warning(said)
    except LedgerContendedError as exc:
        said = f"changed nothing: {exc}"
        context.log.warning(said)
    else:
        said = report.summary()
        context.update_cursor(tick_note(said, state_key=ledger.key, seq=cursor.seq))
        return said
    seq = AlertCursor.from_json(ledger.read()).seq
    context.update_cursor(tick_note(said, state_key=ledger.key, seq=seq))
    return said


def unheard_alerts(instance: dg.DagsterInstance, *, now: datetime) -> list[Pending]:
    """The alerts, of every alert sensor, that no sink has delivered past their first
    delivery attempt (a failed try, or `FIRST_ATTEMPT_WINDOW` after they were raised)."""
    return [
        p
        for name in SENSOR_NAMES
        for p in AlertCursor.from_json(Ledger(instance, name).read()).outbox.unheard(
            now, window=FIRST_ATTEMPT_WINDOW
        )
    ]


def _heartbeat(context: dg.SensorEvaluationContext, url: str) -> str:
    """Ping the dead-man's switch unless an alert is unheard; what happened, in words."""
    unheard = unheard_alerts(context.instance, now=datetime.now(UTC))
    if unheard:
        first = min(unheard, key=lambda p: p.first_at)
        said = (
            f"heartbeat withheld: {len({p.envelope.key for p in unheard})} alert(s) reached "
            f"no sink, the oldest {first.envelope.kind} {first.envelope.incident_id} since "
            f"{first.first_at:%H:%M:%S} UTC (last error: {first.last_error or 'none yet'}); "
            "the dead-man's switch pages instead"
        )
        context.log.error(said)
        return said
    return "heartbeat pinged" if ping(url, log=context.log) else "heartbeat ping failed"


@dg.sensor(
    name=DISCREPANCY,
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
    said = _tick(context, lake, alerts, DISCREPANCY, (IncidentKind.NAKED, IncidentKind.WARNING))
    return dg.SkipReason(said)


@dg.sensor(
    name=FAILURE,
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
    return dg.SkipReason(_tick(context, lake, alerts, FAILURE, (IncidentKind.PIPELINE,)))


@dg.sensor(
    name=SILENCE,
    minimum_interval_seconds=SILENCE_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Pages when no window has been judged for V6_ALERT_SILENCE_S (the schedule is off, "
        "every run is skipped or failing). Each tick it pings V6_HEARTBEAT_URL, a "
        "dead-man's switch, unless an alert has reached no sink past its first delivery "
        "attempt: the switch pages exactly when the alerting is mute or dead."
    ),
)
def reconciliation_silence_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, alerts: AlertsResource
) -> dg.SkipReason:
    said = _tick(context, lake, alerts, SILENCE, (IncidentKind.SILENCE,))
    heartbeat = alerts.get_settings().heartbeat_url
    if heartbeat:
        said = f"{said}; {_heartbeat(context, heartbeat)}"
    return dg.SkipReason(said)


ALERT_SENSORS = [
    discrepancy_alert_sensor,
    reconciliation_failure_sensor,
    reconciliation_silence_sensor,
]
