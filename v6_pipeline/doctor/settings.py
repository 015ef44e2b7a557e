"""The settings item: every `V6_*` setting read as every command reads it, all errors at
once; and the alert URLs, as Apprise reads them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from v6_pipeline import settings as s
from v6_pipeline.doctor.report import Line, fail, ok


@dataclass
class Read:
    """The settings that parsed (variable -> value) and the sentences of those that did not."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def get(self, setting: s.AnySetting) -> Any:
        return self.values.get(setting.variable)

    def has(self, *settings: s.AnySetting) -> bool:
        return all(x.variable in self.values for x in settings)


def read_settings(environ: Mapping[str, str] = os.environ) -> Read:
    read = Read()
    for variable, setting in s.SETTINGS.items():
        try:
            read.values[variable] = setting.read(environ)
        except s.SettingError as exc:
            read.errors.append(str(exc))
    ib, stream = read.get(s.IB_CLIENT_ID), read.get(s.STREAM_CLIENT_ID)
    if ib is not None and ib == stream:
        read.errors.append(
            f"V6_IB_CLIENT_ID and V6_STREAM_CLIENT_ID are both {ib}: the runs and v6 stream "
            "would refuse each other; set them to two different ids"
        )
        read.values.pop(s.STREAM_CLIENT_ID.variable)
    return read


def settings_lines(read: Read) -> list[Line]:
    if read.errors:
        return [fail("settings", error) for error in read.errors]
    return [
        ok(
            "settings",
            f"{len(read.values)} V6_* settings valid (gateway {read.get(s.IB_HOST)}:"
            f"{read.get(s.IB_PORT)}, client id {read.get(s.IB_CLIENT_ID)}, lake "
            f"{read.get(s.LAKE_DIR)})",
        )
    ]


def alert_sinks_line(read: Read) -> Line:
    from v6_pipeline.alerts.delivery import parse_urls, redact

    item = "alert sinks"
    if not read.has(s.ALERT_URLS):
        return fail(item, f"{s.ALERT_URLS.variable} is not valid (see settings above)")
    try:
        urls = parse_urls(read.get(s.ALERT_URLS) or "")
    except ValueError as exc:
        return fail(item, str(exc))
    if not urls:
        return ok(
            item,
            f"{s.ALERT_URLS.variable} is empty: alerts go to the log and alert_log only (set it "
            "to page someone; README, Alerts)",
        )
    names = ", ".join(redact(u) for u in urls)
    return ok(item, f"{len(urls)} sink(s): {names} (send a test alert: `v6 alerts test`)")
