"""What a trader sees in the Dagster UI, window by window, in a real browser.

Each test is a user's path through the UI against a real `dagster dev`; each step
leaves a screenshot in `screenshots/` (docs/testing.md).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from v6_pipeline.defs.partitions import WINDOW, last_closed_window, window_start
from v6_pipeline.defs.sensors import ALERT_SENSORS
from v6_pipeline_tests.support import DEMO
from v6_pipeline_tests.ui.pages import (
    ASSET,
    RUN_TIMEOUT_MS,
    Steps,
    graph_node,
    launch_from_lineage,
    listed,
    metadata_value,
    open_check_partitions,
    open_lineage,
    open_partitions,
    select_check_partition,
    select_partition,
    show_only,
    status_tag,
)
from v6_pipeline_tests.ui.stage import LEG_HELD, LEG_HELD_MISMATCH_FIXED, Stage

ASSETS = ("ib_position_snapshot", "delta_latest_positions", ASSET)
NAKED_CHECK = "no_naked_positions"
NAKED_SENTENCE = "NAKED: DU222 SPY 2026-12-18 580 P (OPT, conid 500004)"


def wait_for_backfill_run(page: Page) -> None:
    """On a backfill's page: until its run (one for the range) has finished. The
    backfill's own status follows at the daemon's next tick; the windows do not wait."""
    page.get_by_role("tab", name="Runs").click()
    finished = page.get_by_text(re.compile(r"^(Failure|Success)$"))
    expect(finished).to_be_visible(timeout=RUN_TIMEOUT_MS)


def wait_for_a_fresh_window() -> None:
    """Until the newest window closed less than 4 minutes ago. The dialog's Latest is
    the newest window when the page loads, and its run may take the live snapshot until
    6 minutes after the window closed: a slow launch near the end of that would find
    the window past and never snapshotted."""
    now = datetime.now(UTC)
    since_close = now - (last_closed_window(now) + WINDOW)
    if since_close > timedelta(minutes=4):
        time.sleep((WINDOW - since_close).total_seconds() + 5)


def as_of_shown(key: str) -> str:
    """How the UI writes the as_of of a window snapshotted 2 s after it closed."""
    taken = window_start(key) + WINDOW + timedelta(seconds=2)
    return taken.strftime("%-I:%M:%S %p")


# A judged window's own numbers: (dagster/row_count, naked_position_count, and the
# no_naked_positions status: Passed or Failed).
Truth = tuple[int, int, str]
GAP = "Execution Failed"  # the status of a window whose run failed before judging it


def expect_windows(
    page: Page, stage: Stage, steps: Steps, truth: dict[str, Truth], gaps: tuple[str, ...] = ()
) -> None:
    """Each judged window's own numbers on its partition, then each window's own check
    status, in the list and on its panel; a gap's is never a verdict."""
    open_partitions(page, stage.url)
    for number, (key, (rows, naked, _)) in enumerate(truth.items(), 1):
        with steps.step(f"window-{number}-metadata"):
            panel = select_partition(page, key)
            expect(status_tag(panel, "Materialized")).to_be_visible()
            expect(metadata_value(panel, "dagster/row_count")).to_have_text(str(rows))
            expect(metadata_value(panel, "naked_position_count")).to_have_text(str(naked))
            expect(metadata_value(panel, "as_of")).to_contain_text(as_of_shown(key))
    statuses = {key: status for key, (*_, status) in truth.items()} | dict.fromkeys(gaps, GAP)
    open_check_partitions(page, stage.url, NAKED_CHECK)
    # First the list, before any window is opened (an open one is named on its panel).
    # The list counts a result only as its window's current one: a verdict not tied to
    # the window's materialization would be listed as Missing.
    for status in sorted(set(statuses.values())):
        with steps.step(f"{NAKED_CHECK}-{status.lower().replace(' ', '-')}-windows"):
            search = show_only(page, status)
            for key, expected in statuses.items():
                if expected == status:
                    expect(listed(search, key)).to_be_visible()
            for key, expected in statuses.items():
                if expected != status:
                    expect(listed(search, key)).to_have_count(0)
    for number, (key, status) in enumerate(statuses.items(), 1):
        with steps.step(f"window-{number}-{NAKED_CHECK}"):
            show_only(page, status)
            check = select_check_partition(page, key)
            if status == GAP:
                expect(status_tag(check, "Execution failed")).to_be_visible()
                for verdict in ("Passed", "Failed"):
                    expect(status_tag(check, verdict)).to_have_count(0)
            else:
                expect(status_tag(check, status)).to_be_visible()
                expect(metadata_value(check, "window")).to_have_text(key)


def test_lineage_shows_the_three_assets_and_opens_discrepancies(
    page: Page, stage: Stage, steps: Steps
) -> None:
    with steps.step("lineage"):
        open_lineage(page, stage.url)
        for asset in ASSETS:
            expect(graph_node(page, asset)).to_be_visible()
    with steps.step("asset-page"):
        graph_node(page, ASSET).click()
        page.get_by_role("link", name="View in Asset Catalog").click()
        expect(page).to_have_url(re.compile(rf"/assets/{ASSET}"))
        expect(page.get_by_text("One row per discrepancy", exact=False)).to_be_visible()
        expect(page.get_by_role("tab", name="Checks")).to_be_visible()


def test_a_window_launched_from_the_ui_fails_naming_the_naked_leg(
    page: Page, stage: Stage, steps: Steps
) -> None:
    wait_for_a_fresh_window()
    with steps.step("launch-latest-window"):
        launch_from_lineage(page, stage.url, None)
        expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    with steps.step("run-failed"):
        tag = page.get_by_text(re.compile(r"^partition: \d{4}-\d\d-\d\d-\d\d:\d\d$"))
        key = tag.inner_text().removeprefix("partition: ")
        expect(page.get_by_text("Failure", exact=True).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
        expect(page.get_by_text(NAKED_CHECK).first).to_be_visible()
    with steps.step("run-names-the-naked-leg"):
        page.get_by_placeholder("Filter…").fill(f"window {key}: NAKED")
        expect(page.get_by_text(f"window {key}: {NAKED_SENTENCE}")).to_be_visible()
    with steps.step("failing-window-check"):
        open_check_partitions(page, stage.url, NAKED_CHECK)
        check = select_check_partition(page, key)
        expect(status_tag(check, "Failed")).to_be_visible()
        expect(check.get_by_text(NAKED_SENTENCE, exact=False)).to_be_visible()


def test_a_backfill_shows_each_windows_own_numbers_and_verdict(
    page: Page, stage: Stage, steps: Steps
) -> None:
    # Three past windows, snapshotted while IB held three different books.
    books = {stage.key(20): DEMO, stage.key(19): LEG_HELD, stage.key(18): LEG_HELD_MISMATCH_FIXED}
    for key, book in books.items():
        stage.store_snapshot(key, book)
    first, _, last = books
    with steps.step("launch-backfill"):
        launch_from_lineage(page, stage.url, f"[{first}...{last}]")
        expect(page).to_have_url(re.compile(r"/runs/b/"))
        wait_for_backfill_run(page)
    expect_windows(
        page,
        stage,
        steps,
        {first: (4, 1, "Failed"), stage.key(19): (3, 0, "Passed"), last: (2, 0, "Passed")},
    )


def test_a_gap_in_a_backfill_is_named_and_the_judged_windows_keep_their_verdicts(
    page: Page, stage: Stage, steps: Steps
) -> None:
    gap, clean, naked = stage.key(15), stage.key(14), stage.key(13)
    stage.store_snapshot(clean, LEG_HELD)
    stage.store_snapshot(naked, DEMO)
    with steps.step("launch-backfill-over-a-gap"):
        launch_from_lineage(page, stage.url, f"[{gap}...{naked}]")
        wait_for_backfill_run(page)
    # The judged windows are materialized with their own verdicts, not turned red.
    truth = {clean: (3, 0, "Passed"), naked: (4, 1, "Failed")}
    expect_windows(page, stage, steps, truth, gaps=(gap,))
    open_partitions(page, stage.url)
    with steps.step("gap-not-materialized"):
        panel = select_partition(page, gap)
        expect(panel.get_by_text("did not materialize this asset", exact=False)).to_be_visible()
    with steps.step("gap-named-in-the-run-log"):
        panel.get_by_text("View logs").click()
        logs = page.get_by_role("dialog")
        sentence = f"No IB snapshot was stored for window(s) {gap},"
        expect(logs.get_by_text(sentence, exact=False).first).to_be_visible()
        expect(logs.get_by_text("cannot be reconstructed", exact=False).first).to_be_visible()


def test_the_alert_sensors_are_running(page: Page, stage: Stage, steps: Steps) -> None:
    names = [sensor.name for sensor in ALERT_SENSORS]
    assert len(names) == 3
    with steps.step("automation"):
        page.goto(f"{stage.url}/automation")
        for name in names:
            row = (
                page.locator("div")
                .filter(has=page.get_by_text(name, exact=True))
                .filter(has=page.locator("input[type=checkbox]"))
                .last
            )
            expect(row.locator("input[type=checkbox]").last).to_be_checked()
    with steps.step("sensor-page"):
        page.get_by_text(names[0], exact=True).click()
        expect(page.get_by_text("Running", exact=True)).to_be_visible()
