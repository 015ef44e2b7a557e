"""Getting alerts out: Apprise, one URL at a time, with an outbox that forgets nothing.

Each URL (`V6_ALERT_URLS`) is its own sink, delivered on its own thread with its own
retries, so one dead webhook never delays or blocks another. The sends of a tick run
in a child process (`sender.py`) that ends at the tick's deadline: a sink that never
finishes answering (one byte every few seconds never trips a per-read timeout) costs
that tick's deadline, never a thread of the sensor's process. An alert a sink did not
take stays pending in the `Outbox` (a JSON-serialisable part of the sensor cursor) and
is retried on later ticks, with backoff, until delivered or `give_up_after` passes:
then it is logged as lost, at ERROR. The outbox refers to a sink by a hash of its URL,
never the URL itself: cursors are shown in the UI and URLs hold tokens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from apprise import Apprise

from v6_pipeline.alerts.compose import Message, compose
from v6_pipeline.alerts.incidents import Alert
from v6_pipeline.settings import ALERT_URLS

URLS_SETTING = ALERT_URLS.variable
# Bounds the cursor: a sink keeps at most this many undelivered alerts (the oldest beyond
# it is lost, at ERROR). Per sink, and counted after the tick's sends, so a busy tick
# never costs a healthy sink an alert and a dead sink cannot grow the state forever.
MAX_PENDING_PER_SINK = 25
# Between ticks, a failing sink is retried after 1, 2, 4, ... minutes, at most 15.
RETRY_FIRST = timedelta(minutes=1)
RETRY_MAX = timedelta(minutes=15)
MAX_ERROR_CHARS = 300
# How long past its deadline the delivery process may take to report and exit before
# it is killed: it stops by itself at the deadline.
EXIT_GRACE_S = 1.0
# A tick's lease on the entries it sends outlasts its delivery deadline by this much.
LEASE_MARGIN_S = 10.0
# A tick's sends end by this deadline (the delivery process is killed after it).
TICK_BUDGET_S = 20.0
# An alert no sink delivered this long after it was raised missed its first attempt.
FIRST_ATTEMPT_WINDOW = timedelta(seconds=TICK_BUDGET_S + EXIT_GRACE_S + LEASE_MARGIN_S)
OVERFLOW = f"the outbox holds {MAX_PENDING_PER_SINK} per sink at most"
SENDER = Path(__file__).with_name("sender.py")
# Whitespace always separates URLs; a comma only before the next `scheme://` (Apprise
# URLs such as mailto's `?to=a@x.com,b@x.com` hold commas). A stray word is an entry
# of its own, and an error, not silently part of the URL before it.
_SEPARATOR = re.compile(r"\s+|,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")

logger = logging.getLogger("v6_pipeline.alerts")


class Log(Protocol):
    """A stdlib logger or a Dagster context's `log`."""

    def info(self, msg: str) -> Any: ...
    def warning(self, msg: str) -> Any: ...
    def error(self, msg: str) -> Any: ...


def parse_urls(raw: str, *, setting: str = URLS_SETTING) -> tuple[str, ...]:
    """The Apprise URLs in `raw` (comma or space separated); a URL Apprise cannot use is
    a ValueError naming `setting` and the entry."""
    urls = tuple(e for e in (e.strip(",") for e in _SEPARATOR.split(raw)) if e)
    for n, url in enumerate(urls, start=1):
        if not Apprise().add(url):
            raise ValueError(
                f"{setting}: entry {n} ({_scheme_and_host(url)}) is not a URL Apprise can "
                "send to; check its scheme and tokens against "
                "https://github.com/caronc/apprise/wiki (e.g. slack://TokenA/TokenB/TokenC, "
                "json://host:port/path, mailtos://user:password@example.com)"
            )
    return urls


def redact(url: str) -> str:
    """Scheme and host only, as Apprise masks them: safe for logs and tables."""
    plugin = Apprise.instantiate(url)
    return _scheme_and_host(plugin.url(privacy=True) if plugin else url)


def _scheme_and_host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}" if parts.scheme else "(no scheme)"


@dataclass(frozen=True)
class Envelope:
    """An alert's message with what identifies it in the alert log."""

    incident_id: str
    kind: str
    severity: str
    raised_at: datetime
    message: Message
    window_key: str | None = None
    run_id: str | None = None

    @classmethod
    def of(cls, alert: Alert, *, ui_url: str) -> Envelope:
        return cls(
            incident_id=alert.incident.id,
            kind=alert.kind.value,
            severity=alert.severity,
            raised_at=alert.at,
            message=compose(alert, ui_url=ui_url),
            window_key=alert.window_key,
            run_id=alert.run_id,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "kind": self.kind,
            "severity": self.severity,
            "raised_at": self.raised_at.isoformat(),
            "title": self.message.title,
            "body": self.message.body,
            "notify_type": self.message.notify_type,
            "window": self.window_key,
            "run_id": self.run_id,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Envelope:
        return cls(
            incident_id=d["incident_id"],
            kind=d["kind"],
            severity=d["severity"],
            raised_at=datetime.fromisoformat(d["raised_at"]),
            message=Message(d["title"], d["body"], d["notify_type"]),
            window_key=d["window"],
            run_id=d["run_id"],
        )

    @property
    def key(self) -> tuple[str, str, str]:
        """Identifies the alert: an incident raises one of a kind at a time."""
        return (self.incident_id, self.kind, self.raised_at.isoformat())

    @staticmethod
    def of_alert_key(alert: Alert) -> tuple[str, str, str]:
        """The `key` of the envelope of `alert`."""
        return (alert.incident.id, alert.kind.value, alert.at.isoformat())


@dataclass(frozen=True)
class Pending:
    """An envelope a sink has not taken yet."""

    sink: str  # Sink.id
    envelope: Envelope
    first_at: datetime
    next_at: datetime
    tries: int = 0  # ticks that tried and failed
    last_error: str = ""
    reached: bool = False  # another sink delivered the same envelope: a person has it

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identifies the entry across ticks and evaluators."""
        return (self.sink, *self.envelope.key)


@dataclass(frozen=True)
class Outbox:
    pending: tuple[Pending, ...] = ()

    def to_list(self) -> list[dict[str, Any]]:
        return [
            {
                "sink": p.sink,
                "envelope": p.envelope.to_dict(),
                "first_at": p.first_at.isoformat(),
                "next_at": p.next_at.isoformat(),
                "tries": p.tries,
                "last_error": p.last_error,
                "reached": p.reached,
            }
            for p in self.pending
        ]

    def to_json(self) -> str:
        return json.dumps(self.to_list(), separators=(",", ":"))

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]]) -> Outbox:
        return cls(
            tuple(
                Pending(
                    sink=d["sink"],
                    envelope=Envelope.from_dict(d["envelope"]),
                    first_at=datetime.fromisoformat(d["first_at"]),
                    next_at=datetime.fromisoformat(d["next_at"]),
                    tries=d["tries"],
                    last_error=d["last_error"],
                    reached=bool(d.get("reached", False)),
                )
                for d in items
            )
        )

    @classmethod
    def from_json(cls, text: str | None) -> Outbox:
        """The outbox saved by `to_json`; None or "" is empty."""
        return cls.from_list(json.loads(text or "[]"))

    def unheard(self, now: datetime, *, window: timedelta) -> list[Pending]:
        """The entries of alerts no sink has delivered, past their first delivery
        attempt (a failed try, or `window` after they were raised): alerts that should
        have reached a person and have not. Empty when every alert reached someone."""
        return [
            p for p in self.pending if not p.reached and (p.tries > 0 or now - p.first_at >= window)
        ]


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to an envelope this tick: `raised` (once per alert, `url` None),
    then per sink `delivered`, `pending` (failed, will retry) or `lost`."""

    envelope: Envelope
    status: str
    at: datetime
    url: str | None = None  # redacted
    attempts: int = 0
    error: str | None = None

    @property
    def delivered(self) -> bool | None:
        return None if self.url is None else self.status == "delivered"


class Sink:
    """One URL, checked by Apprise."""

    def __init__(self, url: str) -> None:
        if not Apprise().add(url):
            raise ValueError(f"{URLS_SETTING}: {_scheme_and_host(url)} is not an Apprise URL")
        self.url = url
        self.id = hashlib.sha256(url.encode()).hexdigest()[:12]
        self.label = redact(url)


# An entry sent this tick: (as it was, its outcome or None if not tried, what stays pending).
Sent = tuple["Pending", "DeliveryOutcome | None", "Pending | None"]


@dataclass
class _Report:
    """What the delivery process said about one sink's due entries (by index)."""

    ended: dict[int, tuple[str | None, int]] = field(default_factory=dict)  # error, attempts
    started: set[int] = field(default_factory=set)
    broken: str = ""  # why the process (or this sink's thread) failed; "" if it did not


class Courier:
    """Sends envelopes to every sink, keeping what did not go out in the outbox."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        give_up_after: timedelta,
        tick_budget_s: float = TICK_BUDGET_S,
        attempts_per_tick: int = 3,
        backoff_s: float = 0.5,
        log: Log = logger,
    ) -> None:
        self.sinks = {sink.id: sink for sink in map(Sink, urls)}
        self.give_up_after = give_up_after
        self.tick_budget_s = tick_budget_s
        self.attempts_per_tick = attempts_per_tick
        self.backoff_s = backoff_s
        self.log = log

    @property
    def lease(self) -> timedelta:
        """How long a tick holds the entries it sends: another evaluator leaves them
        alone meanwhile, and takes them up again if this one died sending them."""
        return timedelta(seconds=self.tick_budget_s + EXIT_GRACE_S + LEASE_MARGIN_S)

    def post(
        self, outbox: Outbox, envelopes: Sequence[Envelope], *, now: datetime
    ) -> tuple[Outbox, list[DeliveryOutcome]]:
        """Log `envelopes`, queue them for every sink, and deliver what is due."""
        raised = self.announce(envelopes, now=now)
        outbox, sent = self.flush(self.queue(outbox, envelopes, now=now), now=now)
        return outbox, raised + sent

    def announce(self, envelopes: Sequence[Envelope], *, now: datetime) -> list[DeliveryOutcome]:
        """Log each alert raised; its `raised` outcome."""
        outcomes = []
        for env in envelopes:
            level = self.log.error if env.severity == "critical" else self.log.warning
            if env.kind == "resolved":
                level = self.log.info
            level(f"alert {env.kind} {env.incident_id}: {env.message.title}\n{env.message.body}")
            outcomes.append(DeliveryOutcome(env, "raised", now))
        return outcomes

    def queue(self, outbox: Outbox, envelopes: Sequence[Envelope], *, now: datetime) -> Outbox:
        """`outbox` with `envelopes` pending for every sink."""
        queued = tuple(
            Pending(sink_id, env, first_at=now, next_at=now)
            for env in envelopes
            for sink_id in self.sinks
        )
        return Outbox((*outbox.pending, *queued))

    def flush(self, outbox: Outbox, *, now: datetime) -> tuple[Outbox, list[DeliveryOutcome]]:
        """Deliver the pending envelopes that are due; give up on the ones too old, and
        on the oldest of a sink holding more than `MAX_PENDING_PER_SINK` afterwards."""
        leased, due, lost = self.take(outbox, now=now)
        outcomes = self.give_up(lost, now=now)
        sent = self.send(due, now=now)
        left, overflow = settle(leased, sent)
        outcomes.extend(o for _, o, _ in sent if o is not None)
        outcomes.extend(self.give_up(overflow, now=now, why=OVERFLOW))
        return left, outcomes

    def take(self, outbox: Outbox, *, now: datetime) -> tuple[Outbox, list[Pending], list[Pending]]:
        """`outbox` with the due entries leased to this tick and the ones to give up on
        gone; the due entries (as they were) and the ones to give up on. Pure: the tick
        that wins the shared state's write sends them (`send`)."""
        keep: list[Pending] = []
        lost: list[Pending] = []
        for p in outbox.pending:
            (lost if self._why_lost(p, now) else keep).append(p)
        due = [p for p in keep if p.next_at <= now]
        until = now + self.lease
        leased = tuple(replace(p, next_at=until) if p.next_at <= now else p for p in keep)
        return Outbox(leased), due, lost

    def give_up(
        self, lost: Sequence[Pending], *, now: datetime, why: str = ""
    ) -> list[DeliveryOutcome]:
        """Log each entry given up on, at ERROR; its `lost` outcome."""
        return [self._lost(p, why or self._why_lost(p, now) or "given up", now) for p in lost]

    def send(self, due: Sequence[Pending], *, now: datetime) -> list[Sent]:
        """Deliver `due` (each sink's entries in order, in the delivery process, all by
        the tick's deadline): per entry, its outcome (None: not tried, the sink failed
        before it) and what stays pending (None: delivered)."""
        by_sink: dict[str, list[Pending]] = {}
        for p in due:
            by_sink.setdefault(p.sink, []).append(p)
        if not by_sink:
            return []
        reports = self._deliver(by_sink)
        sent: list[Sent] = []
        for sink_id, entries in by_sink.items():
            settled = self._settle(sink_id, entries, reports[sink_id], now)
            sent.extend((p, o, rest) for p, (o, rest) in zip(entries, settled, strict=True))
        return sent

    def _deliver(self, due: Mapping[str, list[Pending]]) -> dict[str, _Report]:
        """Send each sink's due entries, in order, in the delivery process, all by the
        tick's deadline; what it said, per sink."""
        deadline = time.time() + self.tick_budget_s
        job = {
            "deadline": deadline,
            "attempts": self.attempts_per_tick,
            "backoff_s": self.backoff_s,
            "sinks": [
                {
                    "id": sink_id,
                    "url": self.sinks[sink_id].url,
                    "messages": [
                        {
                            "title": p.envelope.message.title,
                            "body": p.envelope.message.body,
                            "notify_type": p.envelope.message.notify_type,
                        }
                        for p in entries
                    ],
                }
                for sink_id, entries in due.items()
            ],
        }
        events, broken = _run_sender(job, deadline)
        reports = {sink_id: _Report(broken=broken) for sink_id in due}
        for event in events:
            report = reports.get(str(event.get("sink")))
            if report is None:
                continue
            n = int(event.get("n", -1))
            if event.get("trying"):
                report.started.add(n)
            elif n < 0:  # the sink's thread failed outside a send
                report.broken = str(event.get("error"))
            else:
                report.ended[n] = (event.get("error"), int(event.get("attempts", 0)))
        return reports

    def _settle(
        self, sink_id: str, entries: list[Pending], report: _Report, now: datetime
    ) -> list[tuple[DeliveryOutcome | None, Pending | None]]:
        """Each entry's outcome and what stays pending. Delivered ones leave. The first
        that failed, or started and did not end by the deadline (or the first the
        process could not send at all), is retried on a later tick with backoff; the
        rest wait untouched, as do entries the deadline came before."""
        sink = self.sinks[sink_id]
        cut = f"no complete answer within the tick's delivery deadline ({self.tick_budget_s:g} s)"
        done: list[tuple[DeliveryOutcome | None, Pending | None]] = []
        failed = False
        for n, p in enumerate(entries):
            ended = report.ended.get(n)
            if ended is not None and ended[0] is None:
                done.append(
                    (DeliveryOutcome(p.envelope, "delivered", now, sink.label, ended[1]), None)
                )
                continue
            if failed or (ended is None and n not in report.started and not report.broken):
                done.append((None, p))
                continue
            failed = True
            if ended is not None:
                error, attempts = str(ended[0]), ended[1]
            else:
                error, attempts = report.broken or cut, int(n in report.started)
            retry = min(RETRY_FIRST * 2**p.tries, RETRY_MAX)
            later = replace(p, tries=p.tries + 1, next_at=now + retry, last_error=error)
            self.log.warning(
                f"alert {p.envelope.incident_id} not delivered to {sink.label} "
                f"({attempts} attempt(s)): {error} Next try at {later.next_at:%H:%M:%S} UTC; "
                f"gives up at {p.first_at + self.give_up_after:%Y-%m-%d %H:%M} UTC"
            )
            done.append(
                (DeliveryOutcome(p.envelope, "pending", now, sink.label, attempts, error), later)
            )
        return done

    def _why_lost(self, p: Pending, now: datetime) -> str | None:
        if p.sink not in self.sinks:
            return f"its URL is no longer in {URLS_SETTING}"
        if now - p.first_at >= self.give_up_after:
            return (
                f"undelivered for {now - p.first_at} after {p.tries} tick(s) "
                f"(V6_ALERT_GIVE_UP_S); last error: {p.last_error or 'none'}"
            )
        return None

    def _lost(self, p: Pending, why: str, now: datetime) -> DeliveryOutcome:
        label = self.sinks[p.sink].label if p.sink in self.sinks else f"sink {p.sink}"
        self.log.error(
            f"ALERT LOST: {p.envelope.kind} alert {p.envelope.incident_id} "
            f"({p.envelope.message.title}) was never delivered to {label}: {why}"
        )
        return DeliveryOutcome(p.envelope, "lost", now, label, 0, why)


def settle(outbox: Outbox, sent: Sequence[Sent]) -> tuple[Outbox, list[Pending]]:
    """`outbox` (the newest shared state: other evaluators may have written since the
    sends were leased) with what `sent` says applied: delivered entries gone, failed
    ones waiting for their retry, the rest due again; the entries of an envelope any
    sink delivered marked `reached`. Then the oldest of a sink holding more than
    `MAX_PENDING_PER_SINK` are dropped: returned, to be logged as lost."""
    after = {p.key: rest for p, _, rest in sent}
    heard = {
        p.envelope.key for p, o, rest in sent if rest is None and o is not None and o.delivered
    }
    left: list[Pending] = []
    for p in outbox.pending:
        if p.key in after:
            rest = after[p.key]
            if rest is None:
                continue
            p = rest
        if p.envelope.key in heard and not p.reached:
            p = replace(p, reached=True)
        left.append(p)
    overflow = _overflow(left)
    return (
        Outbox(tuple(p for p in left if id(p) not in overflow)),
        [p for p in left if id(p) in overflow],
    )


def _overflow(pending: Sequence[Pending]) -> set[int]:
    """The ids of the entries beyond `MAX_PENDING_PER_SINK` of their sink, oldest first."""
    by_sink: dict[str, list[Pending]] = {}
    for p in pending:
        by_sink.setdefault(p.sink, []).append(p)
    return {id(p) for entries in by_sink.values() for p in entries[:-MAX_PENDING_PER_SINK]}


def _run_sender(job: Mapping[str, Any], deadline: float) -> tuple[list[dict[str, Any]], str]:
    """The events the delivery process reported for `job`, and a sentence when it failed
    ("" when it did not). It is killed at `deadline` + `EXIT_GRACE_S` (wall clock,
    seconds since the epoch) at the latest: nothing of it outlives this call."""
    try:
        process = subprocess.Popen(
            [sys.executable, str(SENDER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        return [], f"could not start the delivery process ({sys.executable} {SENDER}): {exc}"
    try:
        out, err = process.communicate(
            json.dumps(job).encode(), timeout=max(deadline - time.time(), 0.0) + EXIT_GRACE_S
        )
    except subprocess.TimeoutExpired:  # it stops by itself at the deadline; a safety net
        process.kill()
        try:
            out, err = process.communicate(timeout=EXIT_GRACE_S)
        except subprocess.TimeoutExpired:  # a grandchild holds its pipes: give up on them
            process.wait(timeout=EXIT_GRACE_S)
            out, err = b"", b""
    why = ""
    if process.returncode not in (0, -signal.SIGKILL):
        tail = " ".join(err.decode(errors="replace").split())[-MAX_ERROR_CHARS:]
        why = f"the delivery process failed (exit status {process.returncode}): {tail}"
    events = []
    for line in out.decode(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # not ours: a library printed to stdout
    return events, why


def ping(url: str, *, timeout_s: float = 5.0, log: Log = logger) -> bool:
    """GET `url` (a dead-man's switch such as healthchecks.io): True when it answered
    2xx within `timeout_s` in all. A failure is logged, never raised: the tick's real
    work is done."""
    deadline = time.time() + timeout_s
    events, why = _run_sender({"deadline": deadline, "ping": url}, deadline)
    answer = next((e for e in events if "ping" in e), None)
    if answer is None:
        error = why or f"no complete answer within {timeout_s:g} s"
    elif answer["error"] is None and 200 <= int(answer["ping"]) < 300:
        return True
    else:
        error = answer["error"] or f"HTTP {answer['ping']}"
    log.warning(f"heartbeat ping to {_scheme_and_host(url)} failed: {error}")
    return False
