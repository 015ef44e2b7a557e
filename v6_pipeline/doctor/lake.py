"""The lake's items: readable and writable (a probe object, removed after),
`position_updates` present with its schema, the read checkpoint healthy. Nothing is
written to any table; the probe object lies beside them and is removed at once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import polars as pl
from pyarrow import fs

from v6_pipeline.doctor.bounded import within
from v6_pipeline.doctor.report import Line, fail, ok, skip
from v6_pipeline.lake import LakeError, commits, paths
from v6_pipeline.lake import checkpoint as checkpoints
from v6_pipeline.lake.paths import checkpoint_uri, is_local
from v6_pipeline.lake.source import PositionLog
from v6_pipeline.lake.storage import failure, filesystem, storage_options
from v6_pipeline.lake.tables import try_open

PROBE_PREFIX = ".v6-doctor-probe-"
INIT = "v6 lake init"


@dataclass
class LakeFindings:
    lines: list[Line]
    log: PositionLog | None  # position_updates, when it opened with its schema
    delta_accounts: tuple[str, ...] | None  # accounts with open positions; None: unknown
    why_unknown: str = ""


def _said(lake_dir: str, exc: BaseException) -> str:
    translated = failure(lake_dir, exc)
    return str(translated) if translated is not None else f"{type(exc).__name__}: {exc}"


def access_lines(lake_dir: str, *, timeout_s: float) -> list[Line]:
    """Readable, then writable, each one line."""
    store, root = filesystem(lake_dir)
    where = f"V6_LAKE_DIR={lake_dir}"
    try:
        info = within(timeout_s, lambda: store.get_file_info(root), what="the lake's storage")
        if is_local(lake_dir) and info.type == fs.FileType.NotFound:
            return [
                fail(
                    "lake readable",
                    f"{where}: {root} does not exist: create the lake with `V6_LAKE_DIR="
                    f"{lake_dir} {INIT}` (an empty book), or point V6_LAKE_DIR at yours",
                ),
                skip("lake writable", "the lake does not exist"),
            ]
        names = within(
            timeout_s,
            lambda: store.get_file_info(fs.FileSelector(root, allow_not_found=True)),
            what="listing the lake",
        )
    except Exception as exc:
        return [
            fail(
                "lake readable",
                f"cannot list {where} ({_said(lake_dir, exc)}): check the "
                "path and its permissions (or AWS_* for an object store)",
            ),
            skip("lake writable", "the lake is not readable"),
        ]
    lines = [ok("lake readable", f"{where} holds {len(names)} entry(ies)")]
    probe = f"{root.rstrip('/')}/{PROBE_PREFIX}{uuid.uuid4().hex}"

    def write_read_remove() -> None:
        with store.open_output_stream(probe) as out:
            out.write(b"v6 doctor probe")
        try:
            with store.open_input_stream(probe) as back:
                if back.read() != b"v6 doctor probe":
                    raise OSError("the probe object read back differs from what was written")
        finally:
            store.delete_file(probe)

    try:
        within(timeout_s, write_read_remove, what="writing a probe object")
    except Exception as exc:
        lines.append(
            fail(
                "lake writable",
                f"cannot write under {where} ({_said(lake_dir, exc)}): the runs write "
                "ib_position_snapshots, position_discrepancies and more there — mount it "
                "read-write (or grant the user write access), or point V6_LAKE_DIR at a "
                "writable folder or bucket",
            )
        )
        return lines
    lines.append(ok("lake writable", "a probe object was written, read back and removed"))
    return lines


def table_findings(lake_dir: str, *, default_account: str | None, timeout_s: float) -> LakeFindings:
    """`position_updates` with its schema, the accounts it holds open positions in, and
    the read checkpoint."""
    uri = paths.table_uri(lake_dir, paths.POSITION_UPDATES)
    try:
        log = within(
            timeout_s,
            lambda: PositionLog.open(uri, default_account=default_account),
            what="opening position_updates",
        )
    except LakeError as exc:
        line = fail("position_updates", str(exc))
        return LakeFindings(
            [line, skip("read checkpoint", "position_updates cannot be read")],
            None,
            None,
            "position_updates cannot be read",
        )
    except Exception as exc:
        line = fail("position_updates", f"cannot open {uri} ({_said(lake_dir, exc)})")
        return LakeFindings(
            [line, skip("read checkpoint", "position_updates cannot be read")],
            None,
            None,
            "position_updates cannot be read",
        )
    columns = ", ".join([*log.file_schema, *log.partition_schema])
    try:
        accounts = within(
            timeout_s, lambda: open_accounts(uri, default_account), what="reading position_updates"
        )
        why = ""
    except Exception as exc:
        accounts, why = None, _said(lake_dir, exc)
    lines = [
        ok(
            "position_updates",
            f"version {log.at.version}, {log.files.height} file(s), schema as a run reads it "
            f"({columns})",
        )
        if accounts is not None
        else fail("position_updates", f"its schema is right but its rows cannot be read ({why})")
    ]
    lines.append(checkpoint_line(uri, log, timeout_s=timeout_s))
    return LakeFindings(lines, log, accounts, why)


def open_accounts(uri: str, default_account: str | None) -> tuple[str, ...]:
    """The accounts with an open position (latest row per key not 0), read only."""
    rows = pl.scan_delta(uri, storage_options=storage_options(uri))
    names = rows.collect_schema().names()
    account = pl.col("account") if "account" in names else pl.lit(None, pl.String)
    if default_account:
        account = account.fill_null(pl.lit(default_account))
    latest = (
        rows.select(
            account.str.strip_chars().str.to_uppercase().alias("account"),
            "conid",
            "position",
            "timestamp",
        )
        .sort("timestamp", maintain_order=True)
        .group_by("account", "conid")
        .last()
        .filter(pl.col("position") != 0)
        .collect()
    )
    return tuple(sorted(a for a in latest["account"].unique().to_list() if a is not None))


def checkpoint_line(uri: str, log: PositionLog, *, timeout_s: float) -> Line:
    """The checkpoint `read_latest` keeps for `uri`, read without repairing it (a read
    removes a damaged one; the doctor only says so)."""
    item = "read checkpoint"
    store = checkpoint_uri(uri)

    def load() -> checkpoints.Checkpoint | None:
        path = commits.newest_added_file(store)
        if path is None:
            table = try_open(store)
            if table is None:
                return None
            files = table.file_uris()
            if len(files) != 1:
                raise ValueError(f"{len(files)} data files instead of one")
            path = files[0]
        # The checks `checkpoint.load` makes, without its repair.
        return checkpoints._parse(checkpoints._checked_bytes(path))

    try:
        saved = within(timeout_s, load, what="reading the checkpoint")
    except Exception as exc:
        return fail(
            item,
            f"{store} is damaged ({exc}): nothing is wrong with the data, and the next run "
            f"removes and rebuilds it by itself (a slower read once); to do it now, remove "
            f"{store}",
        )
    if saved is None:
        return ok(item, "none yet (the next run builds it)")
    if saved.source.table_id != log.at.table_id:
        return fail(
            item,
            f"{store} was built for another position_updates table (re-created since): the "
            f"next run rebuilds it by itself; to do it now, remove {store}",
        )
    cutoff = saved.cutoff.strftime("%Y-%m-%d %H:%M:%S UTC")
    return ok(
        item,
        f"at table version {saved.source.version}, cutoff {cutoff}, "
        f"{saved.state.height} key(s) (the table is at version {log.at.version})",
    )
