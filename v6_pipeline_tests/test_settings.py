"""Every `V6_*` setting reads one way (issue #20): one default and one bound each, and a
bad value, whatever the setting, is one sentence naming the variable, the value and
what is accepted, never a traceback nor a silent default.

The tests of a finding go through the surfaces that existed before `v6_pipeline.settings`
(the resources, `AlertSettings`, the stream's readers), so that each fails on the code
before the fix; the table-driven ones at the end cover every setting of the registry.
"""

from __future__ import annotations

import re
from datetime import timedelta

import dagster as dg
import pytest

from v6_pipeline.alerts.settings import AlertSettings
from v6_pipeline.defs.resources import (
    RESOURCES,
    AlertsResource,
    IBGatewayResource,
    LakeResource,
    ReconciliationSettings,
    check_settings,
    resources_from_env,
)
from v6_pipeline.stream.settings import seconds, stream_dead_after, stream_settings

# Every variable the settings modules read, with a valid value (the defaults' or one).
VARIABLES = sorted(
    {variable for cls in RESOURCES.values() for variable in cls.ENV.values()}
    | {"V6_STREAM_CLIENT_ID", "V6_STREAM_FLUSH_S", "V6_STREAM_HEARTBEAT_S"}
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def one_sentence(message: str) -> bool:
    """No line break, no traceback, no second sentence ("x. Y")."""
    return (
        "\n" not in message
        and "Traceback" not in message
        and not re.search(r"[.!?]\s+[A-Z]", message)
    )


def load_error(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> str:
    """The error the code location's load gives with `variable=value` set."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError) as caught:  # noqa: PT011 - the message is checked
        check_settings(resources_from_env())
    message = str(caught.value)
    assert one_sentence(message), message
    return message


# --- A huge value: an OverflowError traceback before -----------------------------------


@pytest.mark.parametrize("field", ["silence_s", "remind_s", "give_up_s"])
def test_a_huge_alert_duration_is_a_sentence_not_an_overflow(field: str) -> None:
    with pytest.raises(ValueError, match=r"='1e20' is over ten years") as caught:
        AlertSettings.parse(**{field: "1e20"})
    assert one_sentence(str(caught.value))


@pytest.mark.parametrize(
    "variable", ["V6_ALERT_SILENCE_S", "V6_ALERT_REMIND_S", "V6_ALERT_GIVE_UP_S"]
)
def test_a_huge_alert_duration_fails_the_load_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    message = load_error(monkeypatch, variable, "1e20")
    assert message.startswith(f"{variable}='1e20' is over ten years")
    assert "at most 315360000" in message  # what is accepted


def test_a_whole_number_with_thousands_of_digits_is_a_sentence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # int() refuses over 4,300 digits with its own message; Dagster's coercion then fails.
    message = load_error(monkeypatch, "V6_IB_CLIENT_ID", "9" * 5000)
    assert message.startswith("V6_IB_CLIENT_ID=999")
    assert "must be between 0 and 2^31-1" in message
    assert len(message) < 300


# --- Not a number: a Dagster stack trace before ------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("V6_IB_PORT", "abc", "V6_IB_PORT='abc' is not a whole number: write a whole number"),
        ("V6_IB_PORT", "4002.0", "V6_IB_PORT='4002.0' is not a whole number"),
        ("V6_IB_CLIENT_ID", "six", "V6_IB_CLIENT_ID='six' is not a whole number"),
    ],
)
def test_a_port_or_client_id_that_is_not_a_number_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    assert load_error(monkeypatch, variable, value).startswith(says)


# --- Non-ASCII digits: read as numbers before ---------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("V6_IB_PORT", "٤٠٠١"),  # Arabic-Indic 4001
        ("V6_IB_CLIENT_ID", "٦"),
        ("V6_IB_TIMEOUT_S", "٣٠"),
        ("V6_ABS_TOL", "٠٫٥"),
        ("V6_STALE_AFTER_S", "٣"),
        ("V6_SETTLE_S", "٣"),
        ("V6_CONFIRM_AFTER_S", "３"),  # fullwidth
        ("V6_STREAM_DEAD_AFTER_S", "١٢٠"),
        ("V6_ALERT_REMIND_S", "٣"),
        ("V6_ALERT_SILENCE_S", "٣"),
        ("V6_ALERT_GIVE_UP_S", "٣"),
        ("V6_IB_QUIET_WINDOWS", "٢٣:٤٠-00:15 America/New_York"),
    ],
)
def test_digits_of_other_scripts_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    message = load_error(monkeypatch, variable, value)
    assert message.startswith(f"{variable}={value!r}")
    assert "ASCII" in message


def test_the_streams_own_numbers_are_ascii_too() -> None:
    with pytest.raises(ValueError, match=r"V6_STREAM_CLIENT_ID='٦٠٧' is not a whole number"):
        stream_settings_from({"V6_STREAM_CLIENT_ID": "٦٠٧"})
    with pytest.raises(ValueError, match=r"V6_STREAM_FLUSH_S='١' is not a number of seconds"):
        stream_settings_from({"V6_STREAM_FLUSH_S": "١"})


def stream_settings_from(environ: dict[str, str]) -> object:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in environ.items():
            mp.setenv(name, value)
        return stream_settings()


# --- Blank: silently the default before ---------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "default"),
    [
        ("V6_LAKE_DIR", "data/lake"),
        ("V6_IB_HOST", "127.0.0.1"),
        ("V6_IB_PORT", "4002"),
        ("V6_IB_CLIENT_ID", "606"),
        ("V6_IB_TIMEOUT_S", "30"),
        ("V6_SEC_TYPES", "OPT"),
        ("V6_ABS_TOL", "0.001"),
        ("V6_SETTLE_S", "3"),
        ("V6_CONFIRM_AFTER_S", "5"),
        ("V6_ALERT_MIN_SEVERITY", "critical"),
        ("V6_ALERT_SILENCE_S", "900"),
        ("V6_ALERT_GIVE_UP_S", "86400"),
        ("V6_UI_URL", "http://127.0.0.1:3000"),
    ],
)
def test_a_blank_setting_is_refused_saying_to_unset_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, default: str
) -> None:
    message = load_error(monkeypatch, variable, "  ")
    assert message.startswith(f"{variable}='  ' is blank: unset it to use the default ({default})")
    assert ", or write " in message


@pytest.mark.parametrize("variable", ["V6_STREAM_FLUSH_S", "V6_STREAM_HEARTBEAT_S"])
def test_a_blank_stream_setting_is_refused(variable: str) -> None:
    with pytest.raises(ValueError, match=rf"{variable}=' ' is blank: unset it"):
        stream_settings_from({variable: " "})


def test_a_blank_retention_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from v6_pipeline.defs.retention import RunRetentionResource

    monkeypatch.setenv("V6_RUN_RETENTION_DAYS", " ")
    with pytest.raises(ValueError, match=r"V6_RUN_RETENTION_DAYS=' ' is blank: .*default \(30\)"):
        check_settings({"retention": RunRetentionResource.from_env()})


def test_empty_is_still_unset_as_compose_passes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("V6_LAKE_DIR", "V6_IB_PORT", "V6_ALERT_SILENCE_S", "V6_STREAM_FLUSH_S"):
        monkeypatch.setenv(variable, "")
    resources = resources_from_env()
    check_settings(resources)
    assert resources["lake"].get_lake().lake_dir == "data/lake"
    assert stream_settings().flush_s == 1.0


@pytest.mark.parametrize(
    ("variable", "read"),
    [
        ("V6_ACCOUNTS", lambda r: r["ib"].account_filter()),
        ("V6_DEFAULT_ACCOUNT", lambda r: r["lake"].get_lake().default_account),
        ("V6_STALE_AFTER_S", lambda r: r["settings"].stale_after()),
        ("V6_STREAM_DEAD_AFTER_S", lambda r: r["settings"].stream_dead_after()),
        ("V6_ALERT_REMIND_S", lambda r: r["alerts"].get_settings().remind_after),
        ("V6_HEARTBEAT_URL", lambda r: r["alerts"].get_settings().heartbeat_url),
        ("V6_ALERT_URLS", lambda r: r["alerts"].get_settings().urls or None),
        ("V6_IB_QUIET_WINDOWS", lambda r: r["alerts"].get_settings().quiet.windows or None),
    ],
)
def test_blank_keeps_its_documented_meaning_where_empty_means_something(
    monkeypatch: pytest.MonkeyPatch, variable: str, read: object
) -> None:
    monkeypatch.setenv(variable, "   ")
    resources = resources_from_env()
    check_settings(resources)
    assert read(resources) is None  # type: ignore[operator]


# --- One cap and one default per setting --------------------------------------------------


def test_stream_dead_after_has_one_default_and_one_cap() -> None:
    pipeline = ReconciliationSettings
    assert pipeline().stream_dead_after() == stream_dead_after({}) == timedelta(seconds=120)
    assert pipeline(stream_dead_after_s="86400").stream_dead_after() == timedelta(days=1)
    assert stream_dead_after({"V6_STREAM_DEAD_AFTER_S": "86400"}) == timedelta(days=1)
    with pytest.raises(ValueError) as by_pipeline:  # noqa: PT011 - compared below
        pipeline(stream_dead_after_s="86401").stream_dead_after()
    with pytest.raises(ValueError) as by_stream:  # noqa: PT011
        stream_dead_after({"V6_STREAM_DEAD_AFTER_S": "86401"})
    assert str(by_pipeline.value) == str(by_stream.value)
    assert str(by_stream.value).startswith("V6_STREAM_DEAD_AFTER_S='86401' is over a day")


def test_the_alert_defaults_are_one() -> None:
    resource = AlertsResource()
    assert resource.get_settings() == AlertSettings.parse() == AlertSettings()
    from v6_pipeline.alerts.compose import DEFAULT_UI_URL

    assert AlertSettings().ui_url == DEFAULT_UI_URL


# --- Identity settings: normalised when parsed --------------------------------------------


def test_accounts_are_trimmed_and_upper_cased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("V6_ACCOUNTS", " du222, DU111 du222 ")
    monkeypatch.setenv("V6_DEFAULT_ACCOUNT", " du111 ")
    monkeypatch.setenv("V6_SEC_TYPES", " opt , stk ")
    resources = resources_from_env()
    check_settings(resources)
    with (
        resources["ib"].process_config_and_initialize_cm() as ib,
        resources["lake"].process_config_and_initialize_cm() as lake,
        resources["settings"].process_config_and_initialize_cm() as settings,
    ):
        assert ib.account_filter() == ("DU222", "DU111")
        assert lake.get_lake().default_account == "DU111"
        assert settings.scope() == ("OPT", "STK")
    assert stream_settings().default_account == "DU111"


def test_one_default_account_only_and_account_ids_are_ascii() -> None:
    with pytest.raises(ValueError, match=r"V6_DEFAULT_ACCOUNT='DU1,DU2' names 2 account ids"):
        LakeResource(default_account="DU1,DU2").check()
    with pytest.raises(ValueError, match=r"V6_ACCOUNTS='DU٣' names 'DU٣', which is not"):
        IBGatewayResource(accounts="DU٣").check()


def test_a_host_and_lake_dir_are_trimmed() -> None:
    assert IBGatewayResource(host=" gw.internal ").address() == ("gw.internal", 4002)
    assert LakeResource(lake_dir=" /srv/lake ").get_lake().lake_dir == "/srv/lake"


# --- Every setting of the registry --------------------------------------------------------


NUMBERS = (
    "V6_IB_PORT",
    "V6_IB_CLIENT_ID",
    "V6_IB_TIMEOUT_S",
    "V6_ABS_TOL",
    "V6_STALE_AFTER_S",
    "V6_SETTLE_S",
    "V6_CONFIRM_AFTER_S",
    "V6_STREAM_DEAD_AFTER_S",
    "V6_ALERT_REMIND_S",
    "V6_ALERT_SILENCE_S",
    "V6_ALERT_GIVE_UP_S",
    "V6_STREAM_CLIENT_ID",
    "V6_STREAM_FLUSH_S",
    "V6_STREAM_HEARTBEAT_S",
)
# The settings whose empty value means nothing: blank is refused.
NOT_EMPTY = (
    "V6_IB_HOST",
    "V6_IB_PORT",
    "V6_IB_CLIENT_ID",
    "V6_IB_TIMEOUT_S",
    "V6_LAKE_DIR",
    "V6_SEC_TYPES",
    "V6_ABS_TOL",
    "V6_SETTLE_S",
    "V6_CONFIRM_AFTER_S",
    "V6_ALERT_MIN_SEVERITY",
    "V6_ALERT_SILENCE_S",
    "V6_ALERT_GIVE_UP_S",
    "V6_UI_URL",
    "V6_STREAM_CLIENT_ID",
    "V6_STREAM_FLUSH_S",
    "V6_STREAM_HEARTBEAT_S",
)
NAMES = ("V6_ACCOUNTS", "V6_DEFAULT_ACCOUNT", "V6_SEC_TYPES")
BAD_NUMBERS = ("abc", "٣", "1e20", "1e400", "nan", "-inf", "-1", "9" * 5000)
BAD_VALUES = [
    *((variable, value) for variable in NUMBERS for value in BAD_NUMBERS),
    *((variable, value) for variable in NOT_EMPTY for value in (" ", "\t\n")),
    *((variable, "Ⅻ") for variable in NAMES),
]
STREAMS_OWN = ("V6_STREAM_CLIENT_ID", "V6_STREAM_FLUSH_S", "V6_STREAM_HEARTBEAT_S")


@pytest.mark.parametrize(
    ("variable", "value"), BAD_VALUES, ids=[f"{v}={x[:12]!r}" for v, x in BAD_VALUES]
)
def test_every_bad_value_is_one_sentence_naming_the_setting_and_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    if variable in STREAMS_OWN:
        monkeypatch.setenv(variable, value)
        with pytest.raises(ValueError) as caught:  # noqa: PT011 - checked below
            stream_settings()
        message = str(caught.value)
        assert one_sentence(message), message
    else:
        message = load_error(monkeypatch, variable, value)
    assert message.startswith(variable), message
    assert repr(value[:37]).strip("'") in message, message  # the value, cut when long
    assert re.search(r"(: |, or )(write|use) | must be ", message), message  # what is accepted
    assert len(message) < 400


def test_the_registry_names_every_setting_once_with_its_accepted_words() -> None:
    from v6_pipeline.settings import SETTINGS

    assert set(SETTINGS) == set(VARIABLES)
    for variable in NOT_EMPTY:
        with pytest.raises(ValueError, match=re.escape(SETTINGS[variable].kind.accepted)):
            SETTINGS[variable].parse(" ")


def test_each_resource_field_default_is_its_settings() -> None:
    from v6_pipeline.settings import SETTINGS

    for cls in RESOURCES.values():
        for field, variable in cls.ENV.items():
            default = cls.model_fields[field].default
            assert str(default) == SETTINGS[variable].default, variable


def test_errors_are_setting_errors_with_the_variable() -> None:
    from v6_pipeline.settings import SettingError

    with pytest.raises(SettingError) as caught:
        ReconciliationSettings(settle_s="90").settle()
    assert caught.value.variable == "V6_SETTLE_S"
    assert isinstance(caught.value, ValueError)  # callers catching ValueError still do


def test_set_variables_are_still_env_vars() -> None:
    resources = resources_from_env({"V6_IB_PORT": "4001", "V6_ABS_TOL": "0.5"})
    assert resources["ib"].port == dg.EnvVar.int("V6_IB_PORT")
    assert resources["settings"].abs_tol == dg.EnvVar("V6_ABS_TOL")


def test_seconds_reads_a_setting_as_before() -> None:
    from v6_pipeline.stream.settings import FLUSH_S

    assert seconds({"V6_STREAM_FLUSH_S": " 0.5 "}, FLUSH_S) == 0.5
    assert seconds({}, FLUSH_S) == 1.0
