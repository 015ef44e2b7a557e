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
        (flush, "0", "V6_STREAM_FLUSH_S='0' must be a number of seconds above 0"),
        (flush, "nan", "V6_STREAM_FLUSH_S='nan' must be"),
        (flush, "inf", "V6_STREAM_FLUSH_S='inf' must be"),
        (
            flush,
            "86401",
            "V6_STREAM_FLUSH_S='86401' must be a number of seconds above 0 and at most a day",
        ),
        (heartbeat, "-3", "V6_STREAM_HEARTBEAT_S='-3' must be"),
        (stream_dead_after, "2m", "V6_STREAM_DEAD_AFTER_S='2m' is not a number"),
    ],
)
def test_a_bad_value_is_an_error_naming_its_variable(
    read: Callable[[dict[str, str]], object], value: str, message: str
) -> None:
    variable = message.split("=")[0]
    with pytest.raises(ValueError, match=re.escape(message)):
        read({variable: value})


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
