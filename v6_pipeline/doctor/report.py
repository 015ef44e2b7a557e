"""One line per item: what was found (✓), what is wrong and its fix (✗), a reminder
(!) that is neither, or an item that could not be checked because an earlier one
failed (-)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TextIO


class Mark(StrEnum):
    OK = "✓"
    FAIL = "✗"
    NOTE = "!"  # a reminder: not a failure
    SKIP = "-"  # not checked: an earlier item failed


@dataclass(frozen=True)
class Line:
    mark: Mark
    item: str
    text: str

    def __str__(self) -> str:
        return f"{self.mark} {self.item}: {self.text}"


def ok(item: str, text: str) -> Line:
    return Line(Mark.OK, item, text)


def fail(item: str, text: str) -> Line:
    return Line(Mark.FAIL, item, text)


def note(item: str, text: str) -> Line:
    return Line(Mark.NOTE, item, text)


def skip(item: str, why: str) -> Line:
    return Line(Mark.SKIP, item, f"not checked ({why})")


class Report:
    """Prints each line as it is found, so that a slow item shows which it is."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.lines: list[Line] = []

    def add(self, line: Line) -> Line:
        self.lines.append(line)
        print(line, file=self.out, flush=True)
        return line

    def run(self, item: str, check: Callable[[], Line]) -> Line:
        """`check()`'s line; an unexpected exception is that item's ✗, never a traceback."""
        try:
            return self.add(check())
        except Exception as exc:
            return self.add(fail(item, f"{type(exc).__name__}: {exc}"))

    @property
    def passed(self) -> bool:
        return all(line.mark in (Mark.OK, Mark.NOTE) for line in self.lines)
