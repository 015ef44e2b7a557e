"""What a trader sees in the Dagster UI, window by window, in a real browser.

Each test is a user's path through the UI against a real `dagster dev`; each step
leaves a screenshot in `screenshots/` (docs/testing.md).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Locator, Page, expect

from v6_pipeline.defs.assets import VERDICT_TAG
from v6_pipeline.defs.checks import check_specs
from v6_pipeline.defs.partitions import WINDOW, last_closed_window, window_start
from v6_pipeline.defs.sensors import ALERT_SENSORS
from v6_pipeline_tests.support import DEMO
from v6_pipeline_tests.ui.pages import (
    ASSET,
    RUN_TIMEOUT_MS,
    Steps,
    check_status,
    checks_row,
    graph_node,
    launch_from_lineage,
    metadata_value,
    open_checks,
    open_lineage,
    open_partitions,
    run_failure,
    select_partition,
    status_tag,
)
from v6_pipeline_tests.ui.stage import LEG_HELD, LEG_HELD_MISMATCH_FIXED, Stage

ASSETS = ("ib_position_snapshot", "delta_latest_positions", ASSET)
NAKED_CHECK = "no_naked_positions"
CHECKS = [spec.name for spec in check_specs()]
NAKED_SENTENCE = "NAKED: DU222 SPY 2026-12-18 580 P (OPT, conid 500004)"
# The lineage node's checks row when every check of the newest live window passed, and
# the names of its icon (failed, passed).
ALL_PASSED = f"{len(CHECKS)} / {len(CHECKS)} Passed"
FAILED, PASSED = "close", "done"


def wait_for_backfill_run(page: Page) -> None:
    """On a backfill's page: until its run (one for the range) has finished. The
    backfill's own status follows at the daemon's next tick; the windows do not wait."""
    page.get_by_role("tab", name="Runs").click()
    finished = page.get_by_text(re.compile(r"^(Failure|Success)$"))
    expect(finished).to_be_visible(timeout=RUN_TIMEOUT_MS)


def wait_for_a_fresh_window(within: timedelta = timedelta(minutes=4)) -> None:
    """Until the newest window closed less than `within` ago. The dialog's Latest is
    the newest window when the page loads, and its run may take the live snapshot until
    6 minutes after the window closed: a slow launch near the end of that would find
    the window past and never snapshotted."""
    now = datetime.now(UTC)
    since_close = now - (last_closed_window(now) + WINDOW)
    if since_close > within:
        time.sleep((WINDOW - since_close).total_seconds() + 5)


def as_of_shown(key: str) -> str:
    """How the UI writes the as_of of a window snapshotted 2 s after it closed."""
    taken = window_start(key) + WINDOW + timedelta(seconds=2)
    return taken.strftime("%-I:%M:%S %p")


# A judged window's own numbers and verdict: (dagster/row_count, naked_position_count,
# and how its `verdict` begins: NAKED, WARN or OK).
Truth = tuple[int, int, str]


def expect_verdict(panel: Locator, verdict: str) -> None:
    """The window's panel leads with its verdict: the first metadata row is `verdict`,
    and it begins with `verdict` (NAKED, WARN, OK)."""
    expect(panel.locator("tr").first.locator("td").first).to_have_text("verdict")
    expect(metadata_value(panel, "verdict")).to_have_text(re.compile(rf"^\s*{verdict}: "))


def expect_windows(page: Page, stage: Stage, steps: Steps, truth: dict[str, Truth]) -> None:
    """Each judged window's own verdict and numbers, on its own partition's panel."""
    open_partitions(page, stage.url)
    for number, (key, (rows, naked, verdict)) in enumerate(truth.items(), 1):
        with steps.step(f"window-{number}-{verdict.lower()}"):
            panel = select_partition(page, key)
            expect(status_tag(panel, "Materialized")).to_be_visible()
            expect_verdict(panel, verdict)
            expect(metadata_value(panel, "dagster/row_count")).to_have_text(str(rows))
            expect(metadata_value(panel, "naked_position_count")).to_have_text(str(naked))
            expect(metadata_value(panel, "as_of")).to_contain_text(as_of_shown(key))


def the_present(page: Page, stage: Stage) -> tuple[str, dict[str, str]]:
    """What the UI shows at a glance: the lineage node's checks row ("2 / 6 Passed") and
    each check's status on the Checks tab."""
    open_lineage(page, stage.url)
    row = checks_row(page, ASSET)
    expect(row).to_have_text(re.compile(rf"^\d+ / {len(CHECKS)} Passed$"))
    node = row.inner_text()
    open_checks(page, stage.url)
    for check in CHECKS:
        expect(check_status(page, check)).to_have_text(re.compile(r"^(Succeeded|Failed)$"))
    return node, {check: check_status(page, check).inner_text() for check in CHECKS}


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


def launch_latest(page: Page, stage: Stage, steps: Steps, outcome: str) -> str:
    """Materialize the Latest window from the lineage, as its live run; its key, once the
    run page says `outcome` (Failure, Success)."""
    with steps.step("launch-latest-window"):
        launch_from_lineage(page, stage.url, None)
        expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}"))
        tag = page.get_by_text(re.compile(r"^partition: \d{4}-\d\d-\d\d-\d\d:\d\d$"))
        key = tag.inner_text().removeprefix("partition: ")
    with steps.step(f"run-{outcome.lower()}"):
        expect(page.get_by_text(outcome, exact=True).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    return key


def test_a_window_launched_from_the_ui_fails_naming_the_naked_leg(
    page: Page, stage: Stage, steps: Steps
) -> None:
    wait_for_a_fresh_window()
    key = launch_latest(page, stage, steps, "Failure")
    with steps.step("run-failure-names-the-legs"):
        # The run's failure is the legs' sentence, not "1 blocking asset check failed".
        expect(run_failure(page)).to_contain_text(
            f"window {key}: 1 naked position(s): {NAKED_SENTENCE}"
        )
    with steps.step("run-names-the-naked-leg"):
        page.get_by_placeholder("Filter…").fill(f"window {key}: NAKED")
        expect(page.get_by_text(f"window {key}: {NAKED_SENTENCE}")).to_be_visible()
    with steps.step("failing-check"):
        open_checks(page, stage.url)
        expect(check_status(page, NAKED_CHECK)).to_have_text("Failed")
        page.get_by_text(NAKED_CHECK, exact=True).first.click()
        expect(page.get_by_text(NAKED_SENTENCE, exact=False).first).to_be_visible()
    with steps.step("failing-window"):
        open_partitions(page, stage.url)
        panel = select_partition(page, key)
        expect_verdict(panel, "NAKED")
        expect(metadata_value(panel, "verdict")).to_contain_text(NAKED_SENTENCE)


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
        # Past windows, naked or not, are judged: the run succeeds and says what it found.
        expect(page.get_by_text("Success", exact=True)).to_be_visible()
        expect(page.get_by_text(f"{VERDICT_TAG}: naked in 1 of 3")).to_be_visible()
    expect_windows(
        page,
        stage,
        steps,
        {first: (4, 1, "NAKED"), stage.key(19): (3, 0, "WARN"), last: (2, 0, "WARN")},
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
        # It fails for the gap alone, and still says what it found in the judged windows.
        expect(page.get_by_text("Failure", exact=True)).to_be_visible()
        expect(page.get_by_text(f"{VERDICT_TAG}: naked in 1 of 2")).to_be_visible()
    # The judged windows are materialized with their own verdicts.
    expect_windows(page, stage, steps, {clean: (3, 0, "WARN"), naked: (4, 1, "NAKED")})
    open_partitions(page, stage.url)
    with steps.step("gap-missing-not-failed"):
        # A window the pipeline missed: neither materialized nor failed (the range plans
        # each asset once: DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS), so it is not
        # in the fill and does not turn the node red.
        panel = select_partition(page, gap)
        expect(status_tag(panel, "Materialized")).to_have_count(0)
        expect(panel.get_by_text("did not materialize this asset", exact=False)).to_have_count(0)
    with steps.step("gap-says-why-on-its-snapshot"):
        open_partitions(page, stage.url, "ib_position_snapshot")
        panel = select_partition(page, gap)
        expect(metadata_value(panel, "source")).to_contain_text("never snapshotted")


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


# It sleeps until a window has just closed, then until the next one closes: up to two
# windows longer than the others.
@pytest.mark.timeout(300 + int(2 * WINDOW.total_seconds()))
def test_a_repaired_leg_turns_the_present_green_and_the_past_stays_per_window(
    page: Page, stage: Stage, steps: Steps
) -> None:
    """The issue's proof (#21): naked window, then a backfill with a naked window and a
    gap (the present unchanged), then the leg repaired and the next live window clean:
    the node and the Checks tab green, the naked window still NAKED on its own panel."""
    # (a) The present is naked: the live run fails naming the leg, the node is red.
    # Early in the window: the backfill of (b) is over before the schedule's run of the
    # next window starts (while a live run judges, a backfill re-states nothing).
    wait_for_a_fresh_window(within=timedelta(minutes=2))
    naked_now = launch_latest(page, stage, steps, "Failure")
    with steps.step("run-failure-names-the-legs"):
        expect(run_failure(page)).to_contain_text(f"window {naked_now}: 1 naked position(s)")
    with steps.step("node-checks-failed"):
        node, checks = the_present(page, stage)
        open_lineage(page, stage.url)
        expect(checks_row(page, ASSET).get_by_role("img")).to_have_attribute("aria-label", FAILED)
        assert node != ALL_PASSED
    with steps.step("checks-tab-naked"):
        open_checks(page, stage.url)
        expect(check_status(page, NAKED_CHECK)).to_have_text("Failed")
        assert checks[NAKED_CHECK] == "Failed"
    # (b) A backfill of past windows, one naked and one never snapshotted, re-judges the
    # past and leaves the present as it was.
    gap, naked_past = stage.key(10), stage.key(9)
    stage.store_snapshot(naked_past, DEMO)
    with steps.step("backfill-naked-and-gap"):
        launch_from_lineage(page, stage.url, f"[{gap}...{naked_past}]")
        wait_for_backfill_run(page)
        expect(page.get_by_text(f"{VERDICT_TAG}: naked in 1 of 1")).to_be_visible()
    with steps.step("present-unchanged-by-the-backfill"):
        assert the_present(page, stage) == (node, checks)
    with steps.step("naked-past-window"):
        open_partitions(page, stage.url)
        expect_verdict(select_partition(page, naked_past), "NAKED")
    # (c) The leg is repaired: Delta agrees with IB on every position from now on.
    repaired = datetime.now(UTC)
    stage.repair_book(repaired)
    # (d) The next window to close sees the repair; its live run is clean.
    next_close = last_closed_window(repaired) + 2 * WINDOW
    time.sleep((next_close - datetime.now(UTC)).total_seconds() + 3)
    clean_now = launch_latest(page, stage, steps, "Success")
    assert window_start(clean_now) >= window_start(naked_now) + WINDOW
    with steps.step("node-checks-passed"):
        open_lineage(page, stage.url)
        expect(checks_row(page, ASSET)).to_have_text(ALL_PASSED)
        expect(checks_row(page, ASSET).get_by_role("img")).to_have_attribute("aria-label", PASSED)
    with steps.step("checks-tab-green"):
        open_checks(page, stage.url)
        for check in CHECKS:
            expect(check_status(page, check)).to_have_text("Succeeded")
    open_partitions(page, stage.url)
    with steps.step("clean-window"):
        expect_verdict(select_partition(page, clean_now), "OK")
    with steps.step("naked-window-still-naked"):
        # The past per window: the first naked window still reads NAKED on its panel.
        panel = select_partition(page, naked_now)
        expect_verdict(panel, "NAKED")
        expect(metadata_value(panel, "naked_position_count")).to_have_text("1")
