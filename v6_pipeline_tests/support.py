"""Shared by the tests: the demo portfolio, and a real server's port and readiness."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request

from v6_pipeline.demo.book import portfolio_path
from v6_pipeline.ib.gateway import load_portfolio

DEMO = load_portfolio(portfolio_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
