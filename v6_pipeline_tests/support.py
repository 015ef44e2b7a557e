"""Shared by the tests: the demo portfolio, and a real server's port and readiness."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from v6_pipeline.demo.book import portfolio_path
from v6_pipeline.ib.gateway import load_portfolio

DEMO = load_portfolio(portfolio_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, *, grace_s: float = 30) -> None:
    """Stop `proc` and everything it started (its own process group, `start_new_session`):
    SIGTERM, then SIGKILL after `grace_s`."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_for_ui(port: int, proc: subprocess.Popen, timeout_s: float = 120) -> bytes:
    """The Dagster webserver's /server_info once it answers; fails if `proc` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the process serving the UI exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as r:
                return r.read()
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the Dagster UI did not come up on port {port}")


def v6(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the `v6` command as a user does, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "v6_pipeline.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


# Test workers (pytest-xdist) install system packages one at a time: dpkg takes one.
_APT_LOCK = Path(tempfile.gettempdir()) / "v6-tests-apt.lock"


def apt_install(package: str, *, present: Callable[[], bool], timeout_s: float = 900) -> str | None:
    """Install Debian's `package` unless `present()`; None when it is there, else why not."""
    with _APT_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be installing it right now
        if present():
            return None
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "--no-install-recommends", package],
        ):
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, env=env, timeout=timeout_s
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"`{' '.join(command)}` failed: {exc}"
            if done.returncode:
                return (
                    f"`{' '.join(command)}` exited {done.returncode}: "
                    f"{(done.stderr or done.stdout).strip()[-2000:]}"
                )
        return None
