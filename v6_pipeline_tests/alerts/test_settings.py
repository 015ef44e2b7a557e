"""Alert settings: defaults, and bad values named with their setting at load."""

from __future__ import annotations

from datetime import timedelta

import pytest

from v6_pipeline.alerts.settings import AlertSettings
from v6_pipeline.alerts.state import IncidentKind


def test_the_defaults() -> None:
    s = AlertSettings.parse()
    assert s == AlertSettings()
    assert s.urls == ()
    assert s.min_severity == "critical"
    assert s.remind_after == timedelta(hours=1)
    assert s.silence_after == timedelta(minutes=15)
    assert s.give_up_after == timedelta(days=1)
    assert s.heartbeat_url is None
    assert s.ui_url == "http://127.0.0.1:3000"
    assert s.quiet.windows == ()


def test_every_setting_parsed() -> None:
    s = AlertSettings.parse(
        urls="json://127.0.0.1:9/a slack://TokenA/TokenB/TokenC",
        min_severity=" Warning ",
        remind_s="1800",
        silence_s="600",
        give_up_s="3600",
        heartbeat_url="https://hc-ping.com/0f0e",
        ui_url="https://dagster.example",
        quiet_windows="23:40-00:15 America/New_York",
    )
    assert len(s.urls) == 2
    assert s.min_severity == "warning"
    assert (s.remind_after, s.silence_after, s.give_up_after) == (
        timedelta(minutes=30),
        timedelta(minutes=10),
        timedelta(hours=1),
    )
    assert s.heartbeat_url == "https://hc-ping.com/0f0e"
    assert s.ui_url == "https://dagster.example"
    assert len(s.quiet.windows) == 1


@pytest.mark.parametrize("never", ["", "  ", "0", "never", "OFF"])
def test_reminders_can_be_turned_off(never: str) -> None:
    assert AlertSettings.parse(remind_s=never).remind_after is None


def test_warnings_are_followed_only_from_min_severity_warning() -> None:
    kinds = (IncidentKind.NAKED, IncidentKind.WARNING)
    assert AlertSettings.parse().policy(*kinds).follow == {IncidentKind.NAKED}
    warning = AlertSettings.parse(min_severity="warning", remind_s="")
    policy = warning.policy(*kinds)
    assert policy.follow == set(kinds)
    assert policy.remind_after is None
    assert AlertSettings.parse().policy(IncidentKind.SILENCE).silence_after == timedelta(minutes=15)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"urls": "json://127.0.0.1:9/a, http://x"}, "V6_ALERT_URLS: entry 2"),
        ({"min_severity": "info"}, "V6_ALERT_MIN_SEVERITY='info'"),
        ({"remind_s": "an hour"}, "V6_ALERT_REMIND_S='an hour' is not a number"),
        ({"silence_s": "-5"}, "V6_ALERT_SILENCE_S='-5' must be a finite number of seconds > 0"),
        ({"silence_s": ""}, "V6_ALERT_SILENCE_S='' is blank: unset it to use the default"),
        ({"give_up_s": "inf"}, "V6_ALERT_GIVE_UP_S='inf' must be a finite number of seconds > 0"),
        ({"heartbeat_url": "hc-ping.com/0f0e"}, "V6_HEARTBEAT_URL='hc-ping.com/0f0e'"),
        ({"ui_url": "ftp://x"}, "V6_UI_URL='ftp://x' is not an http"),
        ({"quiet_windows": "nightly"}, "V6_IB_QUIET_WINDOWS: 'nightly'"),
        # Issue #20: a huge value was an OverflowError traceback.
        ({"silence_s": "1e20"}, "V6_ALERT_SILENCE_S='1e20' is over ten years"),
        ({"remind_s": "1e20"}, "V6_ALERT_REMIND_S='1e20' is over ten years"),
        ({"give_up_s": "1e20"}, "V6_ALERT_GIVE_UP_S='1e20' is over ten years"),
        ({"give_up_s": "9" * 400}, "V6_ALERT_GIVE_UP_S='9999999999"),
        # Digits of other scripts were read as numbers.
        ({"silence_s": "٣٠٠"}, "V6_ALERT_SILENCE_S='٣٠٠' is not a number of seconds"),
        ({"remind_s": "٣"}, "V6_ALERT_REMIND_S='٣' is not a number of seconds"),
        (
            {"quiet_windows": "٢٣:٤٠-00:15 America/New_York"},
            "V6_IB_QUIET_WINDOWS='٢٣:٤٠-00:15 America/New_York' has digits that are not ASCII",
        ),
        # Blank was silently the default, or an unclear error.
        ({"min_severity": " "}, "V6_ALERT_MIN_SEVERITY=' ' is blank: unset it to use the default"),
        ({"ui_url": " "}, "V6_UI_URL=' ' is blank: unset it to use the default"),
        ({"give_up_s": " "}, "V6_ALERT_GIVE_UP_S=' ' is blank: unset it to use the default"),
        ({"ui_url": "http://x:port"}, "V6_UI_URL='http://x:port' is not an http"),
    ],
)
def test_a_bad_value_names_its_setting(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as caught:
        AlertSettings.parse(**kwargs)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("blank", ["", " ", "\t"])
def test_empty_still_means_none_where_it_did(blank: str) -> None:
    s = AlertSettings.parse(urls=blank, heartbeat_url=blank, quiet_windows=blank)
    assert (s.urls, s.heartbeat_url, s.quiet.windows) == ((), None, ())
