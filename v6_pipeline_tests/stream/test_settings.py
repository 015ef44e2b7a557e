"""The stream's settings: one default each, and errors that name the variable."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import timedelta

import pytest

from v6_pipeline.defs.resources import IBGatewayResource, LakeResource
from v6_pipeline.stream.settings import (
    FLUSH_S,
    HEARTBEAT_S,
    seconds,
    stream_client_id,
    stream_dead_after,
    stream_settings,
)

VARIABLES = (
    "V6_IB_HOST",
    "V6_IB_PORT",
    "V6_IB_CLIENT_ID",
    "V6_IB_TIMEOUT_S",
    "V6_LAKE_DIR",
    "V6_DEFAULT_ACCOUNT",
    "V6_STREAM_CLIENT_ID",
    "V6_STREAM_FLUSH_S",
    "V6_STREAM_HEARTBEAT_S",
    "V6_STREAM_DEAD_AFTER_S",
)


def flush(environ: Mapping[str, str]) -> float:
    return seconds(environ, FLUSH_S)


def heartbeat(environ: Mapping[str, str]) -> float:
    return seconds(environ, HEARTBEAT_S)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_pipelines_and_the_issues() -> None:
    settings = stream_settings()
    assert (settings.host, settings.port) == (IBGatewayResource().host, IBGatewayResource().port)
    assert settings.lake_dir == LakeResource().lake_dir
    assert settings.default_account is None
    assert settings.timeout_s == 30.0
    assert (settings.client_id, settings.flush_s, settings.heartbeat_s) == (607, 1.0, 30.0)
    assert settings.stream_id == "607@127.0.0.1:4002"
    assert stream_dead_after({}) == timedelta(seconds=120)


def test_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "V6_IB_HOST": "gw.internal",
        "V6_IB_PORT": "4001",
        "V6_IB_TIMEOUT_S": "12",
        "V6_LAKE_DIR": "/srv/lake",
        "V6_DEFAULT_ACCOUNT": "U123",
        "V6_STREAM_CLIENT_ID": "42",
        "V6_STREAM_FLUSH_S": "0.5",
        "V6_STREAM_HEARTBEAT_S": "10",
    }.items():
        monkeypatch.setenv(name, value)
    settings = stream_settings()
    assert (settings.host, settings.port, settings.timeout_s) == ("gw.internal", 4001, 12.0)
    assert (settings.lake_dir, settings.default_account) == ("/srv/lake", "U123")
    assert (settings.client_id, settings.flush_s, settings.heartbeat_s) == (42, 0.5, 10.0)


@pytest.mark.parametrize(
    ("read", "value", "message"),
    [
        (stream_client_id, "abc", "V6_STREAM_CLIENT_ID='abc' is not a whole number"),
        (stream_client_id, "-1", "V6_STREAM_CLIENT_ID=-1 must be between"),
        (stream_client_id, "2147483648", "V6_STREAM_CLIENT_ID=2147483648 must be between"),
        (flush, "soon", "V6_STREAM_FLUSH_S='soon' is not a number"),
        (flush, "0", "V6_STREAM_FLUSH_S='0' must be a finite number of seconds > 0"),
        (flush, "nan", "V6_STREAM_FLUSH_S='nan' must be"),
        (flush, "inf", "V6_STREAM_FLUSH_S='inf' must be"),
        (
            flush,
            "86401",
            "V6_STREAM_FLUSH_S='86401' is over a day, which can only be a typo: write a finite "
            "number of seconds > 0 and at most 86400 (a day)",
        ),
        (heartbeat, "-3", "V6_STREAM_HEARTBEAT_S='-3' must be"),
        (stream_dead_after, "2m", "V6_STREAM_DEAD_AFTER_S='2m' is not a number"),
        # Issue #20: ASCII digits only, no silent default for a blank value, one cap.
        (
            stream_client_id,
            "٦٠٧",
            "V6_STREAM_CLIENT_ID='٦٠٧' is not a whole number (ASCII digits only): write a "
            "whole number from 0 to 2147483647",
        ),
        (stream_client_id, "9" * 5000, "V6_STREAM_CLIENT_ID=9999999999"),
        (stream_client_id, "607.0", "V6_STREAM_CLIENT_ID='607.0' is not a whole number"),
        (flush, "١", "V6_STREAM_FLUSH_S='١' is not a number of seconds (ASCII digits only)"),
        (flush, " ", "V6_STREAM_FLUSH_S=' ' is blank: unset it to use the default (1), or write"),
        (heartbeat, "\t", "V6_STREAM_HEARTBEAT_S='\\t' is blank: unset it to use the default (30)"),
        (flush, "1e400", "V6_STREAM_FLUSH_S='1e400' is over a day"),
        (stream_dead_after, "86401", "V6_STREAM_DEAD_AFTER_S='86401' is over a day"),
        (stream_dead_after, "1e20", "V6_STREAM_DEAD_AFTER_S='1e20' is over a day"),
    ],
)
def test_a_bad_value_is_an_error_naming_its_variable(
    read: Callable[[dict[str, str]], object], value: str, message: str
) -> None:
    variable = message.split("=")[0]
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        read({variable: value})
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("V6_STREAM_CLIENT_ID", "606", "is the pipeline's client id"),
        ("V6_STREAM_HEARTBEAT_S", "120", "is not below V6_STREAM_DEAD_AFTER_S=120"),
        ("V6_STREAM_DEAD_AFTER_S", "10", "V6_STREAM_HEARTBEAT_S=30 is not below"),
        ("V6_STREAM_FLUSH_S", "0", "V6_STREAM_FLUSH_S='0'"),
        ("V6_IB_PORT", "http", "V6_IB_PORT"),
        ("V6_IB_TIMEOUT_S", "0", "V6_IB_TIMEOUT_S"),
    ],
)
def test_the_settings_are_checked_together_and_with_the_pipelines(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        stream_settings()


def test_dead_after_set_empty_disables_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    assert stream_dead_after({"V6_STREAM_DEAD_AFTER_S": ""}) is None
    assert stream_dead_after({"V6_STREAM_DEAD_AFTER_S": "  "}) is None
    assert stream_dead_after({"V6_STREAM_DEAD_AFTER_S": "300"}) == timedelta(seconds=300)
    monkeypatch.setenv("V6_STREAM_DEAD_AFTER_S", "")
    monkeypatch.setenv("V6_STREAM_HEARTBEAT_S", "3600")  # no check: no bound to respect
    assert stream_settings().heartbeat_s == 3600.0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        # Dagster's own multi-line error, with its stack trace, before issue #20.
        ("V6_IB_PORT", "abc", "V6_IB_PORT='abc' is not a whole number: write a whole number"),
        ("V6_IB_PORT", "٤٠٠١", "V6_IB_PORT='٤٠٠١' is not a whole number (ASCII digits only)"),
        ("V6_LAKE_DIR", "  ", "V6_LAKE_DIR='  ' is blank: unset it to use the default"),
        ("V6_IB_HOST", " ", "V6_IB_HOST=' ' is blank: unset it to use the default (127.0.0.1)"),
        ("V6_IB_TIMEOUT_S", "1e20", "V6_IB_TIMEOUT_S='1e20' is over ten years"),
        ("V6_STREAM_CLIENT_ID", "606", "is the pipeline's client id"),
        ("V6_STREAM_DEAD_AFTER_S", "10", "V6_STREAM_HEARTBEAT_S=30 is not below"),
    ],
)
def test_a_bad_setting_read_by_the_stream_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        stream_settings()
    said = str(caught.value)
    assert "\n" not in said
    assert not re.search(r"[.!?]\s+[A-Z]", said), said  # one sentence


def test_the_stream_and_the_pipeline_share_one_liveness_cap() -> None:
    from v6_pipeline.defs.resources import ReconciliationSettings

    assert stream_dead_after({}) == ReconciliationSettings().stream_dead_after()
    for value in ("86401", "864000"):  # over a day: the stream refused, the pipeline did not
        with pytest.raises(ValueError, match=re.escape(f"V6_STREAM_DEAD_AFTER_S='{value}'")):
            ReconciliationSettings(stream_dead_after_s=value).check()
        with pytest.raises(ValueError, match=re.escape(f"V6_STREAM_DEAD_AFTER_S='{value}'")):
            stream_dead_after({"V6_STREAM_DEAD_AFTER_S": value})


def test_the_default_account_is_upper_cased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("V6_DEFAULT_ACCOUNT", " u123 ")
    monkeypatch.setenv("V6_IB_HOST", " gw.internal ")
    settings = stream_settings()
    assert settings.default_account == "U123"
    assert settings.host == "gw.internal"
