"""The `v6` command as a user runs it."""

from __future__ import annotations

import subprocess
import sys


def test_demo_prints_the_verdict() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "v6_pipeline.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "NAKED_POSITION" in proc.stdout
    assert "conid 500004" in proc.stdout


def test_unknown_command_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "v6_pipeline.cli", "frobnicate"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
