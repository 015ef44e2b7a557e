"""Debian's Chromium for the browser suite, installed by the suite itself when missing.

Playwright's own browser download (`playwright install`) cannot reach its servers here;
Debian's package comes from the package registry like everything else.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from v6_pipeline_tests.support import apt_install

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
    failed = apt_install("chromium", present=CHROMIUM.exists, timeout_s=_APT_TIMEOUT_S)
    if failed:
        raise ChromiumMissingError(
            f"the browser tests need Debian's Chromium at {CHROMIUM}, and {failed} (run it "
            "as root, or install the package by hand)"
        )
    if not CHROMIUM.exists():
        raise ChromiumMissingError(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM
