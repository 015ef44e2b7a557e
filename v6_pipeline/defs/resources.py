"""Resources: IB, the lake, and the reconciliation settings, from the `V6_*` settings.

Each setting has one default, one bound and one parser: its `Setting` in
`v6_pipeline/settings.py`, whose default is also the resource field's.
`resources_from_env` passes an `EnvVar` only for the variables that are set (the UI
then shows where a value came from), and `check_settings` parses every value once,
when Dagster loads the code location, so a bad value is one sentence naming the
variable in the UI, not a surprise in a run at 3 a.m. Fields that are numbers in spirit
are strings: Dagster's `EnvVar` has a string and an int form only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import ClassVar

import dagster as dg
from pydantic import PrivateAttr

from v6_pipeline import settings as s
from v6_pipeline.alerts.settings import AlertSettings
from v6_pipeline.ib.snapshot import IBSnapshot, take_snapshot
from v6_pipeline.lake import Lake
from v6_pipeline.settings import IB_SEC_TYPES, AnySetting, OptionalSetting, Setting, Text

__all__ = [
    "IB_SEC_TYPES",
    "RESOURCES",
    "AlertsResource",
    "IBGatewayResource",
    "LakeResource",
    "ReconciliationSettings",
    "check_settings",
    "resources_from_env",
]


class _Settings(dg.ConfigurableResource):
    """A resource whose fields are `V6_*` settings (`ENV`: field -> variable).

    `SETTINGS` (field -> `Setting`) gives each field its parser; a variable it does not
    name (a subclass elsewhere) is refused only when blank, the rest is its own check.
    """

    SETTINGS: ClassVar[dict[str, AnySetting]] = {}
    ENV: ClassVar[dict[str, str]] = {}
    # Variables whose empty value means something (off), unlike an unset one.
    EMPTY_MEANS_OFF: ClassVar[frozenset[str]] = frozenset()

    # Variables set blank in the environment `from_env` read (variable -> value): the
    # field keeps its default, and `check_settings` refuses them.
    _blank: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **given: str) -> _Settings:
        """The settings whose variables are set in `environ`, `given` fields overriding."""
        fields: dict[str, object] = {}
        blank: dict[str, str] = {}
        for field, variable in cls.ENV.items():
            raw = environ.get(variable)
            if raw is None or field in given:
                continue
            if not raw.strip():
                if variable in cls.EMPTY_MEANS_OFF:
                    fields[field] = ""  # set empty: off (Dagster reads "" as unset)
                elif raw and not isinstance(cls._setting(field), OptionalSetting):
                    blank[variable] = raw
                continue  # else empty, as Compose passes an unset variable: the default
            annotation = cls.model_fields[field].annotation
            fields[field] = dg.EnvVar.int(variable) if annotation is int else dg.EnvVar(variable)
        resource = cls(**{**fields, **given})
        resource._blank = blank
        return resource

    @classmethod
    def _setting(cls, field: str) -> AnySetting:
        """The `Setting` of `field`; a generic one for a variable `SETTINGS` lacks."""
        if field in cls.SETTINGS:
            return cls.SETTINGS[field]
        default = cls.model_fields[field].default
        return Setting(cls.ENV[field], str(default), Text("a value"))

    def check_environment(self, environ: Mapping[str, str] = os.environ) -> None:
        """Before Dagster resolves the `EnvVar`s: the blank variables `from_env` saw, and
        each `EnvVar`'s value in `environ` read by its `Setting` (Dagster's own coercion
        of `1e3` or `٣` would be a traceback, or a number)."""
        fields = {variable: field for field, variable in self.ENV.items()}
        for variable, raw in self._blank.items():
            self._setting(fields[variable]).parse(raw)
        for field in self.ENV:
            name = getattr(getattr(self, field), "env_var_name", None)
            if name in s.SETTINGS and (raw := environ.get(name)) is not None:
                s.SETTINGS[name].parse(raw)

    def check(self) -> None:
        """Raise ValueError (a `SettingError`) naming the variable of the first bad setting."""


def _empty_means_off(settings: Mapping[str, AnySetting]) -> frozenset[str]:
    return frozenset(
        setting.variable
        for setting in settings.values()
        if isinstance(setting, OptionalSetting) and setting.empty_means_off
    )


def _seconds(setting: Setting[float], raw: str) -> timedelta:
    return timedelta(seconds=setting.parse(raw))


def _optional_seconds(setting: OptionalSetting[float], raw: str) -> timedelta | None:
    value = setting.parse(raw)
    return None if value is None else timedelta(seconds=value)


class IBGatewayResource(_Settings):
    """IB Gateway or TWS over its TCP API, read-only: one complete position snapshot."""

    SETTINGS: ClassVar[dict[str, AnySetting]] = {
        "host": s.IB_HOST,
        "port": s.IB_PORT,
        "client_id": s.IB_CLIENT_ID,
        "timeout_s": s.IB_TIMEOUT_S,
        "accounts": s.ACCOUNTS,
    }
    ENV: ClassVar[dict[str, str]] = {f: setting.variable for f, setting in SETTINGS.items()}

    host: str = s.IB_HOST.default
    port: int = s.IB_PORT.value()
    client_id: int = s.IB_CLIENT_ID.value()  # far from the 0/1/2 trading clients usually take
    timeout_s: str = s.IB_TIMEOUT_S.default
    accounts: str = s.ACCOUNTS.default  # empty: every account the gateway manages

    def check(self) -> None:
        self.address()
        s.IB_CLIENT_ID.parse(str(self.client_id))
        self.timeout()
        self.account_filter()

    def address(self) -> tuple[str, int]:
        """(host, port), parsed."""
        return s.IB_HOST.parse(self.host), s.IB_PORT.parse(str(self.port))

    def timeout(self) -> float:
        return s.IB_TIMEOUT_S.parse(self.timeout_s)

    def account_filter(self) -> tuple[str, ...] | None:
        """The accounts to judge (`V6_ACCOUNTS`, upper-cased); `None`: every managed account."""
        return s.ACCOUNTS.parse(self.accounts) or None

    def snapshot(self) -> IBSnapshot:
        host, port = self.address()
        return take_snapshot(host, port, self.client_id, timeout_s=self.timeout())


class LakeResource(_Settings):
    """The Delta tables under `lake_dir`."""

    SETTINGS: ClassVar[dict[str, AnySetting]] = {
        "lake_dir": s.LAKE_DIR,
        "default_account": s.DEFAULT_ACCOUNT,
    }
    ENV: ClassVar[dict[str, str]] = {f: setting.variable for f, setting in SETTINGS.items()}

    lake_dir: str = s.LAKE_DIR.default
    default_account: str = s.DEFAULT_ACCOUNT.default

    def check(self) -> None:
        self.root()
        self.account()

    def root(self) -> str:
        """The lake's folder or URI (`V6_LAKE_DIR`, trimmed)."""
        return s.LAKE_DIR.parse(self.lake_dir)

    def account(self) -> str | None:
        """`V6_DEFAULT_ACCOUNT`, upper-cased; None when empty."""
        return s.DEFAULT_ACCOUNT.parse(self.default_account)

    def get_lake(self) -> Lake:
        return Lake(self.root(), default_account=self.account())


class ReconciliationSettings(_Settings):
    """What counts as a discrepancy: scope, tolerance, staleness."""

    SETTINGS: ClassVar[dict[str, AnySetting]] = {
        "sec_types": s.SEC_TYPES,
        "abs_tol": s.ABS_TOL,
        "allow_large_tol": s.ALLOW_LARGE_TOL,
        "stale_after_s": s.STALE_AFTER_S,
        "stream_dead_after_s": s.STREAM_DEAD_AFTER_S,
        "settle_s": s.SETTLE_S,
        "confirm_after_s": s.CONFIRM_AFTER_S,
    }
    ENV: ClassVar[dict[str, str]] = {f: setting.variable for f, setting in SETTINGS.items()}
    EMPTY_MEANS_OFF: ClassVar[frozenset[str]] = _empty_means_off(SETTINGS)

    sec_types: str = s.SEC_TYPES.default
    abs_tol: str = s.ABS_TOL.default
    allow_large_tol: str = s.ALLOW_LARGE_TOL.default  # "1": a tolerance of a contract or more
    stale_after_s: str = s.STALE_AFTER_S.default
    stream_dead_after_s: str = s.STREAM_DEAD_AFTER_S.default  # empty: no liveness check
    # A live window's Delta read waits this long after the snapshot (still as of it), so
    # a fill the streamer is still writing is seen.
    settle_s: str = s.SETTLE_S.default
    # A live window with a critical candidate takes a second snapshot this long after the
    # first; a key is NAKED only if naked in both.
    confirm_after_s: str = s.CONFIRM_AFTER_S.default

    def check(self) -> None:
        self.scope()
        self.tolerance()
        self.stale_after()
        self.stream_dead_after()
        self.settle()
        self.confirm_after()

    def settle(self) -> timedelta:
        return _seconds(s.SETTLE_S, self.settle_s)

    def confirm_after(self) -> timedelta:
        return _seconds(s.CONFIRM_AFTER_S, self.confirm_after_s)

    def stream_dead_after(self) -> timedelta | None:
        return _optional_seconds(s.STREAM_DEAD_AFTER_S, self.stream_dead_after_s)

    def scope(self) -> tuple[str, ...] | None:
        """The sec types in scope; `None` means all (`*`)."""
        return s.SEC_TYPES.parse(self.sec_types)

    def tolerance(self) -> float:
        value = s.ABS_TOL.parse(self.abs_tol)
        if value >= 1 and not s.ALLOW_LARGE_TOL.parse(self.allow_large_tol):
            raise s.SettingError(
                s.ABS_TOL.variable,
                f"V6_ABS_TOL={self.abs_tol!r} is a whole contract or more, so a closed leg "
                "would no longer count as open, hiding naked positions: use a tolerance "
                "below 1 (default 0.001), or set V6_ALLOW_LARGE_TOL=1 if you mean it",
            )
        return value

    def stale_after(self) -> timedelta | None:
        return _optional_seconds(s.STALE_AFTER_S, self.stale_after_s)

    def describe(self) -> str:
        scope = self.scope()
        stale = self.stale_after()
        return (
            f"sec types {'all' if scope is None else ','.join(scope)}, "
            f"tolerance {self.tolerance():g}, "
            f"stale after {'off' if stale is None else f'{stale.total_seconds():g} s'}, "
            f"settle {self.settle().total_seconds():g} s, "
            f"confirm after {self.confirm_after().total_seconds():g} s"
        )


class AlertsResource(_Settings):
    """Where alerts go and when (docs/alerts.md); parsed by `AlertSettings.parse`."""

    SETTINGS: ClassVar[dict[str, AnySetting]] = {
        "urls": s.ALERT_URLS,
        "min_severity": s.ALERT_MIN_SEVERITY,
        "remind_s": s.ALERT_REMIND_S,
        "silence_s": s.ALERT_SILENCE_S,
        "give_up_s": s.ALERT_GIVE_UP_S,
        "heartbeat_url": s.HEARTBEAT_URL,
        "ui_url": s.UI_URL,
        "quiet_windows": s.IB_QUIET_WINDOWS,
    }
    ENV: ClassVar[dict[str, str]] = {f: setting.variable for f, setting in SETTINGS.items()}
    EMPTY_MEANS_OFF: ClassVar[frozenset[str]] = _empty_means_off(SETTINGS)

    urls: str = s.ALERT_URLS.default
    min_severity: str = s.ALERT_MIN_SEVERITY.default
    remind_s: str = s.ALERT_REMIND_S.default
    silence_s: str = s.ALERT_SILENCE_S.default
    give_up_s: str = s.ALERT_GIVE_UP_S.default
    heartbeat_url: str = s.HEARTBEAT_URL.default
    ui_url: str = s.UI_URL.default
    quiet_windows: str = s.IB_QUIET_WINDOWS.default

    def check(self) -> None:
        self.get_settings()

    def get_settings(self) -> AlertSettings:
        return AlertSettings.parse(**{field: getattr(self, field) for field in self.ENV})


RESOURCES: dict[str, type[_Settings]] = {
    "ib": IBGatewayResource,
    "lake": LakeResource,
    "settings": ReconciliationSettings,
    "alerts": AlertsResource,
}


def resources_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, _Settings]:
    """The resources as the `V6_*` settings configure them (docs/settings.md)."""
    return {name: cls.from_env(environ) for name, cls in RESOURCES.items()}


def check_settings(resources: Mapping[str, dg.ConfigurableResource]) -> None:
    """Parse every setting of `resources` (EnvVars resolved); a ValueError (one sentence,
    a `SettingError`) names the bad one."""
    for resource in resources.values():
        if isinstance(resource, _Settings):
            resource.check_environment()
            try:
                # The context manager closes the ephemeral instance Dagster builds for
                # the init context; left to the garbage collector, its SQLite
                # connections fail noisily at a random later moment.
                with resource.process_config_and_initialize_cm() as resolved:
                    resolved.check()
            except dg.DagsterInvalidConfigError as exc:
                variables = ", ".join(type(resource).ENV.values())
                said = next(iter(str(exc).splitlines()), "")
                raise ValueError(
                    f"a setting among {variables} is malformed ({said}); check each one"
                ) from exc
