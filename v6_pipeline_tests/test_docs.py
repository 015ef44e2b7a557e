"""README.md is the front door and docs/ holds the rest: every relative link of the manual
leads to a file (and a heading, when it names one), the README stays short, its first
lines are the two commands `.ci/run` and users rely on, and its layout names only real
paths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from v6_pipeline_tests.manual import DOCS, README, REPO, pages

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
MAX_README_LINES = 320


def without_code_blocks(path: Path) -> str:
    return re.sub(r"^```.*?^```", "", path.read_text(), flags=re.MULTILINE | re.DOTALL)


def prose(path: Path) -> str:
    """The page without its code blocks and inline code (no links live there)."""
    return re.sub(r"`[^`\n]*`", "", without_code_blocks(path))


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of the page's headings."""
    found: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", without_code_blocks(path), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n, candidate = 0, slug
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def relative_links(path: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(path))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:, ...
    ]


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    links = relative_links(page)
    broken = []
    for link in links:
        file, _, anchor = link.partition("#")
        target = (page.parent / file).resolve() if file else page
        if not target.is_file():
            broken.append(f"{link}: no file {target}")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.name}")
    assert broken == [], broken


def test_the_link_check_sees_links() -> None:
    assert "docs/img/failing-window.png" in relative_links(README)
    assert "../README.md#what-it-decides" in relative_links(DOCS / "reconciliation.md")


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(REPO / link.partition("#")[0]).resolve() for link in relative_links(README)}
    unlinked = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert unlinked == [], "link these docs pages from README.md"


def test_the_readme_is_a_front_door() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, "move detail into docs/ and link it from README.md"
    assert lines[0] == "# v6_pipeline"
    assert lines[2] == "```bash"
    assert lines[3].endswith("&& .venv/bin/v6 demo")  # the demo command
    assert "&& .venv/bin/pytest" in lines[4]  # .ci/run runs line 5 as the test command
    assert lines[5] == "```"
    for heading in ("Connecting to your IB Gateway / TWS", "Settings", "Alerts", "Layout"):
        assert f"\n## {heading}\n" in README.read_text(), heading


def layout_paths() -> list[str]:
    """The paths the README's Layout block names: top-level entries and one level below."""
    section = README.read_text().split("\n## Layout\n", 1)[1]
    block = section.split("```", 2)[1]
    paths, parent = [], ""
    for line in block.splitlines()[1:]:
        indent = len(line) - len(line.lstrip(" "))
        if not line.strip() or indent > 2:  # a description's continuation
            continue
        name = line.split()[0]
        if indent == 0:
            parent = name if name.endswith("/") else ""
            paths.append(name)
        else:
            paths.append(parent + name)
    return paths


def test_the_layout_names_only_paths_that_exist() -> None:
    paths = layout_paths()
    assert "v6_pipeline/reconcile.py" in paths
    assert "v6_pipeline/ib/" in paths
    missing = [path for path in paths if not (REPO / path).exists()]
    assert missing == [], "README.md's Layout names paths that do not exist"
    kinds = [path for path in paths if path.endswith("/") != (REPO / path).is_dir()]
    assert kinds == [], "a directory in README.md's Layout ends with /, a file does not"
