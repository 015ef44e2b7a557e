"""The delivery process: one tick's sends, ended with the process at the tick's deadline.

`delivery.Courier` (and `delivery.ping`) run this file as a child process. A thread
cannot be stopped, and a sink that trickles one byte at a time never trips a per-read
timeout: in the sensor's own process it would hold a thread forever and keep the
process from exiting. Here it holds a thread of a process that ends at the deadline.

Reads one JSON job on stdin, writes one JSON line per event on stdout, flushed at once,
so that what went out before the deadline is known even if the process is killed:

- `{"deadline": epoch_s, "attempts": n, "backoff_s": s, "sinks": [{"id", "url",
  "messages": [{"title", "body", "notify_type"}]}]}`: each sink on its own thread, its
  messages in order, retried `attempts` times with backoff; after a failure the rest
  of that sink's wait for a later tick. Events: `{"sink", "n", "trying": true}` when
  message n starts, `{"sink", "n", "error": null | str, "attempts": k}` when it ends.
- `{"deadline": epoch_s, "ping": url}`: one GET. Event: `{"ping": status | null,
  "error": null | str}`.

Runs as a script and imports nothing from v6_pipeline, so it starts in a fraction of a
second (Apprise's import is most of it).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

MAX_ERROR_CHARS = 300
Event = dict[str, Any]


def main() -> None:
    job = json.load(sys.stdin)
    deadline = float(job["deadline"])
    events: queue.Queue[Event | None] = queue.Queue()
    if "ping" in job:
        workers = [threading.Thread(target=_ping, args=(job["ping"], deadline, events))]
    else:
        import apprise  # noqa: F401  once, here: a failure is this process's exit status

        workers = [
            threading.Thread(target=_drain, args=(sink, job, deadline, events))
            for sink in job["sinks"]
        ]
    for worker in workers:
        worker.daemon = True
        worker.start()
    running = len(workers)
    while running:
        try:
            event = events.get(timeout=max(deadline - time.time(), 0.0))
        except queue.Empty:
            break  # the deadline: what is still sending is abandoned with the process
        if event is None:
            running -= 1
        else:
            print(json.dumps(event), flush=True)
    sys.stdout.flush()
    os._exit(0)  # not sys.exit: it would wait for a thread stuck in a send


def _drain(sink: dict[str, Any], job: dict[str, Any], deadline: float, events: queue.Queue) -> None:
    try:
        from apprise import Apprise, NotifyType

        apprise = Apprise()
        apprise.add(sink["url"])
        for n, message in enumerate(sink["messages"]):
            if time.time() >= deadline:
                return
            events.put({"sink": sink["id"], "n": n, "trying": True})
            error: str | None = "the deadline came before the first attempt"
            attempts = 0
            for attempt in range(int(job["attempts"])):
                left = deadline - time.time()
                if left <= 0:
                    break
                if attempt:
                    time.sleep(min(float(job["backoff_s"]) * 2 ** (attempt - 1), left))
                attempts += 1
                result = apprise.notify(
                    body=message["body"],
                    title=message["title"],
                    notify_type=NotifyType(message["notify_type"]),
                )
                error = None if result else _said(result)
                if error is None:
                    break
            events.put({"sink": sink["id"], "n": n, "error": error, "attempts": attempts})
            if error is not None:
                return  # the sink is down: the rest wait for a later tick
    except Exception as exc:  # reported as this sink's failure, never a silent thread
        events.put({"sink": sink["id"], "n": -1, "error": _one_line(exc), "attempts": 0})
    finally:
        events.put(None)


def _ping(url: str, deadline: float, events: queue.Queue) -> None:
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "v6-pipeline"})
    try:
        timeout = max(deadline - time.time(), 0.1)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            events.put({"ping": response.status, "error": None})
    except urllib.error.HTTPError as exc:  # a status outside 2xx/3xx
        events.put({"ping": exc.code, "error": f"HTTP {exc.code}"})
    except (OSError, ValueError) as exc:  # URLError is an OSError
        events.put({"ping": None, "error": _one_line(exc)})
    finally:
        events.put(None)


def _said(result: Any) -> str:
    """Why Apprise did not deliver, in its own words."""
    said = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR")]
    return (" ".join(dict.fromkeys(said)) or f"Apprise status {result.status.name}")[
        :MAX_ERROR_CHARS
    ]


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:MAX_ERROR_CHARS]


if __name__ == "__main__":
    # Apprise logs what `result.logs()` already reports; stderr stays for real crashes.
    logging.getLogger("apprise").addHandler(logging.NullHandler())
    logging.getLogger("apprise").propagate = False
    main()
