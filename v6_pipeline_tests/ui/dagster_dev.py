"""`dagster dev` (webserver + daemon) in its own process group, for the browser suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from v6_pipeline.demo.ui import stop_group
from v6_pipeline_tests.support import free_port, wait_for_ui

_START_TIMEOUT_S = 240  # a cold start on a busy 2-core machine takes over a minute


@contextmanager
def dagster_dev(env: Mapping[str, str], *, cwd: Path, log: Path) -> Iterator[str]:
    """The UI's base URL while `dagster dev` serves the project with `env` set; its
    output goes to `log` (read it when a test fails)."""
    port = free_port()
    command = [
        sys.executable, "-m", "dagster", "dev", "-m", "v6_pipeline.definitions",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            env={**os.environ, **env},
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopped with its daemon and run workers
        )
        try:
            wait_for_ui(port, proc, timeout_s=_START_TIMEOUT_S)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_group(proc)


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    """The reply of the webserver on `port` to a GraphQL query, as the UI sends it."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)
