"""The commits of a local Delta table, read straight from its log.

Opening a table replays its whole log (a Delta checkpoint and the commits after it): tens
of milliseconds for thousands of files. A reader that remembers version V only needs the
commit files V+1, V+2, ... while they exist, if those only added files. Anything else
(a removed file, a schema or protocol change, an action this reader does not know, a
missing commit, a table re-created at the same path) returns None: the caller then opens
the table the ordinary way. Commit files are immutable and appear whole (written aside,
then renamed), so reading them while a writer commits is safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from v6_pipeline.lake.paths import is_local

# Actions that neither add nor remove data (a writer's notes, an application's
# transaction id, domain metadata).
_NEUTRAL = frozenset({"commitInfo", "txn", "domainMetadata"})
_COMMIT = re.compile(r"[0-9]{20}\.json")
# How far `newest_added_file` looks back past commits that changed no data (vacuums).
_LOOK_BACK = 20


@dataclass(frozen=True)
class Appended:
    version: int  # the newest version
    commit: str  # `digest` of its commit file
    adds: list[dict[str, Any]]  # the `add` actions after the known version, in commit order


def digest(table_uri: str, version: int) -> str | None:
    """What identifies commit `version` of the table (a table re-created at the same path
    has other commits); None when its commit file cannot be read here."""
    text = _commit(table_uri, version)
    return None if text is None else _digest(text)


def appended_since(table_uri: str, version: int, commit: str) -> Appended | None:
    """The files added after `version` (whose commit has digest `commit`), or None when the
    log since then did more than add files, or cannot be read here."""
    base = _commit(table_uri, version)
    if base is None or _digest(base) != commit:
        return None
    adds: list[dict[str, Any]] = []
    last = base
    while (text := _commit(table_uri, version + 1)) is not None:
        version, last = version + 1, text
        try:
            actions = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:  # not this reader's to judge: the ordinary open reports it
            return None
        for action in actions:
            if len(action) != 1:
                return None
            ((kind, body),) = action.items()
            if kind == "add" and not body.get("deletionVector"):
                adds.append(body)
            elif kind not in _NEUTRAL:
                return None
    return Appended(version=version, commit=_digest(last), adds=adds)


def newest_added_file(table_uri: str) -> str | None:
    """The file the newest commit that changed data added, for a table whose every data
    change replaces it with one file (as `checkpoint.save` does); None when the newest
    commits do not show one (a remote or missing table, another kind of change).

    Raises `ValueError` on a commit that is not JSON (a damaged log).
    """
    if not is_local(table_uri):
        return None
    root = Path(table_uri.removeprefix("file://"))
    try:
        names = os.listdir(root / "_delta_log")
    except FileNotFoundError:
        return None
    versions = sorted((int(n[:20]) for n in names if _COMMIT.fullmatch(n)), reverse=True)
    for version in versions[:_LOOK_BACK]:
        text = _commit(table_uri, version)
        if text is None:
            return None
        actions = [json.loads(line) for line in text.splitlines() if line.strip()]
        adds = [a["add"]["path"] for a in actions if "add" in a]
        if adds:
            return str(root / unquote(adds[0])) if len(adds) == 1 else None
        if any(kind not in _NEUTRAL for action in actions for kind in action):
            return None
    return None


def _commit(table_uri: str, version: int) -> bytes | None:
    if not is_local(table_uri):  # an object store: one request per commit is no shortcut
        return None
    path = Path(table_uri.removeprefix("file://")) / "_delta_log" / f"{version:020d}.json"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _digest(text: bytes) -> str:
    return hashlib.blake2b(text, digest_size=16).hexdigest()
