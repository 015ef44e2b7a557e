"""The manual as the tests read it: README.md (the front door) and the pages of docs/.

Tests that check the documentation against the code read the text wherever it lives now,
so a section can move between README.md and docs/ without a test going blind.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"


def pages() -> list[Path]:
    """README.md, then every page of docs/, in name order."""
    return [README, *sorted(DOCS.glob("*.md"))]


def manual_text() -> str:
    """Every page of the manual, one after another."""
    return "\n".join(page.read_text() for page in pages())


def table_rows() -> list[str]:
    """Every table row (a line starting with `|`) of every page."""
    return [line for line in manual_text().splitlines() if line.startswith("|")]


def section(heading: str) -> str:
    """The text under the one heading (any level) named `heading`, up to the next heading."""
    found = []
    for page in pages():
        parts = re.split(rf"^#+ {re.escape(heading)}\n", page.read_text(), flags=re.MULTILINE)
        found += [part.split("\n#", 1)[0] for part in parts[1:]]
    assert len(found) == 1, f"{len(found)} sections named {heading!r} in README.md and docs/"
    return found[0]
