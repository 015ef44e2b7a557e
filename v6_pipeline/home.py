"""The Dagster instance home (`DAGSTER_HOME`) the `v6` commands run in."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

import dagster as dg


def prepare_home(path: str | Path) -> Path:
    """Make `path` a Dagster home: an absolute, existing folder with the project's
    dagster.yaml (kept if the operator already has one there)."""
    home = Path(path).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        with resources.as_file(resources.files("v6_pipeline").joinpath("dagster.yaml")) as src:
            shutil.copyfile(src, config)
    return home


def instance_from_env() -> tuple[dg.DagsterInstance, str]:
    """The instance `DAGSTER_HOME` names, or an ephemeral one (nothing kept), and a
    sentence saying which."""
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if home:
        os.environ["DAGSTER_HOME"] = str(prepare_home(home))
        return dg.DagsterInstance.get(), f"Dagster instance: {os.environ['DAGSTER_HOME']}"
    return (
        dg.DagsterInstance.ephemeral(),
        "Dagster instance: ephemeral (set DAGSTER_HOME to keep run history for the UI)",
    )
