"""What a user does in the Dagster UI, one function per gesture, and the screenshots.

Locators use what a person reads (button names, labels, texts); the UI's class names
are build hashes and are never relied on.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect

SCREENSHOTS = Path(__file__).parent / "screenshots"
RUN_TIMEOUT_MS = 240_000  # a run or backfill on a busy machine, daemon ticks included
ASSET = "position_discrepancies"


@dataclass
class Steps:
    """Each step of a test leaves a screenshot; a failing step leaves one marked FAILED."""

    page: Page
    prefix: str
    count: int = 0

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.count += 1
        path = SCREENSHOTS / f"{self.prefix}-{self.count:02d}-{name}.png"
        try:
            yield
        except BaseException:
            # The step's own error matters more than a screenshot that cannot be taken.
            with contextlib.suppress(PlaywrightError):
                self.page.screenshot(path=path.with_name(f"{path.stem}-FAILED.png"))
            raise
        self.page.screenshot(path=path)


def open_lineage(page: Page, url: str) -> None:
    page.goto(f"{url}/asset-groups")
    expect(page.get_by_role("button", name="Materialize all…")).to_be_visible()


def graph_node(page: Page, asset: str) -> Locator:
    """An asset's node in the lineage graph (SVG foreignObject), not the sidebar entry."""
    return page.locator("foreignObject").get_by_text(asset, exact=True)


def launch_from_lineage(page: Page, url: str, partitions: str | None) -> None:
    """Materialize all three assets: the latest window (`None`) or a range typed as the
    UI takes it (`[FIRST...LAST]`); then follow the toast to the run or backfill page."""
    open_lineage(page, url)
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog")
    if partitions is None:
        dialog.get_by_role("button", name="Latest").click()
        expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
        dialog.get_by_role("button", name="Launch 1 run").click()
    else:
        selection = dialog.get_by_placeholder("No matching partitions")
        selection.fill(partitions)
        selection.press("Enter")
        dialog.get_by_role("button", name="Launch backfill").click()
    # The toast says what was launched; its View link is gone after a few seconds.
    page.get_by_role("link", name="View", exact=True).click()


def open_partitions(page: Page, url: str, asset: str = ASSET) -> None:
    """An asset's Partitions tab: one window at a time, each with its own metadata."""
    page.goto(f"{url}/assets/{asset}?view=partitions")
    expect(page.get_by_placeholder("Filter by name…")).to_be_visible()


def select_partition(page: Page, key: str) -> Locator:
    """On the Partitions tab: the window `key`'s panel."""
    return _select(page, "Filter by name…", key, "Latest materialization")


def metadata_value(scope: Locator, name: str) -> Locator:
    """The value cell of the metadata row called `name`."""
    row = scope.locator("tr").filter(has=scope.page.get_by_text(name, exact=True))
    return row.locator("td").nth(1)


def status_tag(scope: Locator, status: str) -> Locator:
    """The status tag reading `status` (Materialized, Failed, Passed...) in `scope`."""
    return scope.locator(f"[data-tooltip='{status}']")


def checks_row(page: Page, asset: str) -> Locator:
    """The "Asset checks" row of an asset's lineage node: "✗ 2 / 6 Passed" and the like
    (the link to its Checks tab; the icon before the count is labelled by its name)."""
    node = page.locator("foreignObject").filter(has=page.get_by_text(asset, exact=True))
    return node.locator("a[href$='view=checks']")


def open_checks(page: Page, url: str) -> None:
    """The asset's Checks tab: each check's newest evaluation (the present)."""
    page.goto(f"{url}/assets/{ASSET}?view=checks")
    expect(page.get_by_text(re.compile(r"^Checks \(\d+\)$"))).to_be_visible()


def check_status(page: Page, check: str) -> Locator:
    """On the Checks tab: the status under `check`'s name in the list (Succeeded,
    Failed...)."""
    return page.locator(f"[title='{check}'] + span")


def run_failure(page: Page) -> Locator:
    """On a run's page: the run's failure (its RUN_FAILURE event: "Execution of run ...
    failed" and the failure's own description)."""
    return (
        page.locator("div")
        .filter(has=page.get_by_text(re.compile(r"^Execution of run for .* failed\.")))
        .filter(has_text="Failure: ")
        .last
    )


def listed(search: Locator, key: str) -> Locator:
    """The window `key` in the list below a filter box (the bar above may name it too)."""
    return search.locator(f"xpath=following::*[normalize-space(text())='{key}']").filter(
        visible=True
    )


def _select(page: Page, placeholder: str, key: str, label: str) -> Locator:
    """Find the window in the list, open it; the innermost block showing both the
    window's name and `label` (its panel)."""
    search = page.get_by_placeholder(placeholder)
    search.fill(key)
    listed(search, key).first.click()
    expect(page.get_by_text(label, exact=True)).to_be_visible()
    return (
        page.locator("div")
        .filter(has=page.get_by_text(label, exact=True))
        .filter(has_text=key)
        .last
    )
