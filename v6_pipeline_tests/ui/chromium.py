"""Debian's Chromium for the browser suite, installed by the suite itself when missing.

Playwright's own browser download (`playwright install`) cannot reach its servers here;
Debian's package comes from the package registry like everything else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
_APT_TIMEOUT_S = 900
# No sandbox: the suite runs as root in CI, where Chromium refuses its sandbox. The rest
# stop the background calls Chromium makes on its own (updates, sync, metrics): the
# machine has no internet, and a test must not wait on one.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
]


class ChromiumMissingError(RuntimeError):
    pass


def ensure_chromium() -> Path:
    """`/usr/bin/chromium`, installed with apt-get when missing; raises saying why not."""
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        raise ChromiumMissingError(
            f"{CHROMIUM} is missing and apt-get is not available: install Debian's "
            "`chromium` package for the browser tests (never `playwright install`)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
    ):
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=_APT_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ChromiumMissingError(_failed(command, str(exc))) from exc
        if done.returncode:
            raise ChromiumMissingError(_failed(command, (done.stderr or done.stdout)[-2000:]))
    if not CHROMIUM.exists():
        raise ChromiumMissingError(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM


def _failed(command: list[str], output: str) -> str:
    return (
        f"the browser tests need Debian's Chromium at {CHROMIUM}, and `{' '.join(command)}` "
        f"failed (run it as root, or install the package by hand):\n{output}"
    )
