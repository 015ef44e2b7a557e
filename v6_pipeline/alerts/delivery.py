"""Getting alerts out: Apprise, one URL at a time, with an outbox that forgets nothing.

Each URL (`V6_ALERT_URLS`) is its own sink with its own Apprise object, delivered from
its own thread with its own retries and deadline, so one dead webhook never delays or
blocks another. An alert a sink did not take stays pending in the `Outbox` (a
JSON-serialisable part of the sensor cursor) and is retried on later ticks, with
backoff, until delivered or `give_up_after` passes: then it is logged as lost, at
ERROR. The outbox refers to a sink by a hash of its URL, never the URL itself: cursors
are shown in the UI and URLs hold tokens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from apprise import Apprise, NotifyType

from v6_pipeline.alerts.compose import Message, compose
from v6_pipeline.alerts.incidents import Alert

URLS_SETTING = "V6_ALERT_URLS"
MAX_PENDING = 25  # bounds the cursor; beyond it the oldest pending alert is lost (logged)
# Between ticks, a failing sink is retried after 1, 2, 4, ... minutes, at most 15.
RETRY_FIRST = timedelta(minutes=1)
RETRY_MAX = timedelta(minutes=15)
MAX_ERROR_CHARS = 300
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


@dataclass(frozen=True)
class Pending:
    """An envelope a sink has not taken yet."""

    sink: str  # Sink.id
    envelope: Envelope
    first_at: datetime
    next_at: datetime
    tries: int = 0  # ticks that tried and failed
    last_error: str = ""


@dataclass(frozen=True)
class Outbox:
    pending: tuple[Pending, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            [
                {
                    "sink": p.sink,
                    "envelope": p.envelope.to_dict(),
                    "first_at": p.first_at.isoformat(),
                    "next_at": p.next_at.isoformat(),
                    "tries": p.tries,
                    "last_error": p.last_error,
                }
                for p in self.pending
            ],
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> Outbox:
        """The outbox saved by `to_json`; None or "" is empty."""
        return cls(
            tuple(
                Pending(
                    sink=d["sink"],
                    envelope=Envelope.from_dict(d["envelope"]),
                    first_at=datetime.fromisoformat(d["first_at"]),
                    next_at=datetime.fromisoformat(d["next_at"]),
                    tries=d["tries"],
                    last_error=d["last_error"],
                )
                for d in json.loads(text or "[]")
            )
        )


@dataclass(frozen=True)
class Outcome:
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
    """One URL and its own Apprise object."""

    def __init__(self, url: str) -> None:
        self.apprise = Apprise()
        if not self.apprise.add(url):
            raise ValueError(f"{URLS_SETTING}: {_scheme_and_host(url)} is not an Apprise URL")
        self.id = hashlib.sha256(url.encode()).hexdigest()[:12]
        self.label = redact(url)

    def send(self, message: Message, *, timeout_s: float) -> str | None:
        """None when delivered, else why not."""
        result = self.apprise.notify(
            body=message.body,
            title=message.title,
            notify_type=NotifyType(message.notify_type),
            timeout=max(timeout_s, 0.1),
        )
        if result:
            return None
        said = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR")]
        error = " ".join(dict.fromkeys(said)) or f"Apprise status {result.status.name}"
        return error[:MAX_ERROR_CHARS]


class Courier:
    """Sends envelopes to every sink, keeping what did not go out in the outbox."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        give_up_after: timedelta,
        tick_budget_s: float = 20.0,
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

    def post(
        self, outbox: Outbox, envelopes: Sequence[Envelope], *, now: datetime
    ) -> tuple[Outbox, list[Outcome]]:
        """Log `envelopes`, queue them for every sink, and deliver what is due."""
        outcomes = []
        for env in envelopes:
            level = self.log.error if env.severity == "critical" else self.log.warning
            if env.kind == "resolved":
                level = self.log.info
            level(f"alert {env.kind} {env.incident_id}: {env.message.title}\n{env.message.body}")
            outcomes.append(Outcome(env, "raised", now))
        queued = tuple(
            Pending(sink_id, env, first_at=now, next_at=now)
            for env in envelopes
            for sink_id in self.sinks
        )
        outbox, sent = self.flush(Outbox((*outbox.pending, *queued)), now=now)
        return outbox, outcomes + sent

    def flush(self, outbox: Outbox, *, now: datetime) -> tuple[Outbox, list[Outcome]]:
        """Deliver the pending envelopes that are due; give up on the ones too old."""
        outcomes: list[Outcome] = []
        keep: list[Pending] = []
        for p in outbox.pending:
            why = self._why_lost(p, now)
            if why:
                outcomes.append(self._lost(p, why, now))
            else:
                keep.append(p)
        overflow, keep = keep[:-MAX_PENDING], keep[-MAX_PENDING:]
        outcomes.extend(
            self._lost(p, f"the outbox holds {MAX_PENDING} at most", now) for p in overflow
        )
        due: dict[str, list[int]] = {}
        for n, p in enumerate(keep):
            if p.next_at <= now:
                due.setdefault(p.sink, []).append(n)
        slots: list[Pending | None] = list(keep)
        if due:
            deadline = time.monotonic() + self.tick_budget_s
            with ThreadPoolExecutor(max_workers=len(due)) as pool:
                jobs = [
                    pool.submit(self._drain, sink, [keep[n] for n in ns], deadline, now)
                    for sink, ns in due.items()
                ]
            for ns, job in zip(due.values(), jobs, strict=True):
                for n, (outcome, left) in zip(ns, job.result(), strict=True):
                    slots[n] = left
                    if outcome is not None:
                        outcomes.append(outcome)
        return Outbox(tuple(p for p in slots if p is not None)), outcomes

    def _drain(
        self, sink_id: str, entries: list[Pending], deadline: float, now: datetime
    ) -> list[tuple[Outcome | None, Pending | None]]:
        """Send `entries` to one sink in order; after a failure the rest wait for a later
        tick (the sink is down; other sinks are not waiting on it)."""
        sink = self.sinks[sink_id]
        done: list[tuple[Outcome | None, Pending | None]] = []
        failed = False
        for p in entries:
            if failed or time.monotonic() >= deadline:
                done.append((None, p))
                continue
            error, attempts = self._send(sink, p.envelope.message, deadline)
            if error is None:
                done.append((Outcome(p.envelope, "delivered", now, sink.label, attempts), None))
                continue
            failed = True
            retry = min(RETRY_FIRST * 2**p.tries, RETRY_MAX)
            later = replace(p, tries=p.tries + 1, next_at=now + retry, last_error=error)
            self.log.warning(
                f"alert {p.envelope.incident_id} not delivered to {sink.label} "
                f"({attempts} attempt(s)): {error} Next try at {later.next_at:%H:%M:%S} UTC; "
                f"gives up at {p.first_at + self.give_up_after:%Y-%m-%d %H:%M} UTC"
            )
            done.append((Outcome(p.envelope, "pending", now, sink.label, attempts, error), later))
        return done

    def _send(self, sink: Sink, message: Message, deadline: float) -> tuple[str | None, int]:
        error: str | None = "the tick's delivery time ran out"
        attempts = 0
        for attempt in range(self.attempts_per_tick):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), left))
                left = deadline - time.monotonic()
            attempts += 1
            error = sink.send(message, timeout_s=left)
            if error is None:
                break
        return error, attempts

    def _why_lost(self, p: Pending, now: datetime) -> str | None:
        if p.sink not in self.sinks:
            return f"its URL is no longer in {URLS_SETTING}"
        if now - p.first_at >= self.give_up_after:
            return (
                f"undelivered for {now - p.first_at} after {p.tries} tick(s) "
                f"(V6_ALERT_GIVE_UP_S); last error: {p.last_error or 'none'}"
            )
        return None

    def _lost(self, p: Pending, why: str, now: datetime) -> Outcome:
        label = self.sinks[p.sink].label if p.sink in self.sinks else f"sink {p.sink}"
        self.log.error(
            f"ALERT LOST: {p.envelope.kind} alert {p.envelope.incident_id} "
            f"({p.envelope.message.title}) was never delivered to {label}: {why}"
        )
        return Outcome(p.envelope, "lost", now, label, 0, why)


def ping(url: str, *, timeout_s: float = 5.0, log: Log = logger) -> bool:
    """GET `url` (a dead-man's switch such as healthchecks.io): True when it answered
    2xx. A failure is logged, never raised: the tick's real work is done."""
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "v6-pipeline"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            if 200 <= response.status < 300:
                return True
            error = f"HTTP {response.status}"
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        error = str(exc)
    log.warning(f"heartbeat ping to {_scheme_and_host(url)} failed: {error}")
    return False
