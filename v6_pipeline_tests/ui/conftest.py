"""The browser suite's stage: Debian's Chromium driven by Playwright, and a real
`dagster dev` (webserver + daemon) on a temp DAGSTER_HOME, a temp lake and the
emulator. One stage serves the whole package: starting `dagster dev` costs a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from v6_pipeline.defs.partitions import WINDOW, last_closed_window
from v6_pipeline.demo.book import DEMO_STALE_AFTER_S, demo_position_updates
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake.lake import Lake
from v6_pipeline.run.instance import prepare_home
from v6_pipeline_tests.support import DEMO
from v6_pipeline_tests.ui.chromium import LAUNCH_ARGS, ChromiumMissingError, ensure_chromium
from v6_pipeline_tests.ui.dagster_dev import dagster_dev
from v6_pipeline_tests.ui.pages import SCREENSHOTS, Steps
from v6_pipeline_tests.ui.stage import Stage

# Few partitions keep the UI fast and the plots readable: two hours of windows.
HISTORY = 24
ACTION_TIMEOUT_MS = 60_000  # the machine is slow and shared


@pytest.fixture(scope="package")
def chromium() -> Path:
    try:
        return ensure_chromium()
    except ChromiumMissingError as exc:
        # Never a skip: in CI a suite that cannot run must say so by failing.
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="package")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="package")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    base = tmp_path_factory.mktemp("ui")
    newest = last_closed_window(datetime.now(UTC))
    start = newest - HISTORY * WINDOW
    lake = Lake(base / "lake")
    # The demo book, written before the first window: every window sees the same Delta.
    lake.append_position_updates(demo_position_updates(start))
    home = prepare_home(base / "dagster_home")
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    SCREENSHOTS.mkdir(exist_ok=True)
    with GatewayThread(DEMO) as gateway:
        env = {
            "DAGSTER_HOME": str(home),
            "V6_IB_HOST": gateway.host,
            "V6_IB_PORT": str(gateway.port),
            "V6_LAKE_DIR": str(base / "lake"),
            "V6_STALE_AFTER_S": str(DEMO_STALE_AFTER_S),
            "V6_PARTITIONS_START": start.isoformat(),
            "V6_ALERT_URLS": "",  # alerts go to the log and alert_log only
            # No `v6 stream` writes this lake (the tests do): no liveness check.
            "V6_STREAM_DEAD_AFTER_S": "",
            # As deploy/ and `v6 demo --ui` set it: a gap reads missing, not failed.
            "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1",
        }
        with dagster_dev(env, cwd=base, log=base / "dagster-dev.log") as url:
            yield Stage(url, lake, newest)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id="UTC")
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def steps(page: Page, request: pytest.FixtureRequest) -> Steps:
    return Steps(page, request.node.name.removeprefix("test_"))
