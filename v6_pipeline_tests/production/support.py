"""A real PostgreSQL server for the tests: Debian's PostgreSQL 15, started with `initdb` and
`pg_ctl` in a temp dir on a free loopback port, installed with apt where missing."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from v6_pipeline_tests.support import apt_install, free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
_TOOLS = ("initdb", "pg_ctl")


class PostgresUnavailableError(RuntimeError):
    """PostgreSQL could not be installed or started; the message says what to do."""


def _pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, or Debian's (not on PATH)."""
    found = [shutil.which(tool) for tool in _TOOLS]
    if all(found):
        return Path(found[0]).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True):
        if all((Path(folder) / tool).exists() for tool in _TOOLS):
            return Path(folder)
    return None


def _major(folder: str) -> int:
    version = Path(folder).parent.name
    return int(version) if version.isdigit() else 0


def _install() -> None:
    if os.geteuid() != 0:
        raise PostgresUnavailableError(
            "initdb and pg_ctl are missing and this user cannot install them: run "
            "`sudo apt-get install -y postgresql` (Debian's PostgreSQL 15), then the tests"
        )
    failed = apt_install("postgresql", present=lambda: _pg_bin() is not None)
    if failed:
        raise PostgresUnavailableError(f"installing PostgreSQL failed: {failed}")


def _server_user() -> str | None:
    """The account the server runs as: initdb and postgres refuse to run as root."""
    if os.geteuid() != 0:
        return None
    if shutil.which("runuser") is None:
        raise PostgresUnavailableError(
            "runuser (util-linux) is missing: it runs PostgreSQL as non-root"
        )
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise PostgresUnavailableError("no non-root account (postgres, nobody) to run PostgreSQL as")


@dataclass
class PostgresServer:
    root: Path
    port: int
    bin: Path
    user: str | None
    template: str = "template0"  # what `create_database` copies

    def url(self, database: str = "postgres") -> str:
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; dagster-postgres ships psycopg2.
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh database, a copy of `template`; its name."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        finally:
            conn.close()
        return name

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return subprocess.run(
            [*prefix, *command], capture_output=True, text=True, check=False, cwd=self.root
        )

    def stop(self) -> None:
        data = str(self.root / "data")
        self._run(str(self.bin / "pg_ctl"), "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """Start a throwaway server (installing PostgreSQL first if needed)."""
    if _pg_bin() is None:
        _install()
    pg_bin = _pg_bin()
    if pg_bin is None:
        raise PostgresUnavailableError("apt installed postgresql, yet initdb/pg_ctl are not found")
    user = _server_user()
    # Not under pytest's tmp dir: that is private to root, and the server runs as `user`.
    root = Path(tempfile.mkdtemp(prefix="v6-postgres-"))
    if user:
        shutil.chown(root, user)
    server = PostgresServer(root, 0, pg_bin, user)
    init = server._run(
        str(pg_bin / "initdb"), "-D", str(root / "data"), "-U", "postgres",
        "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
    )  # fmt: skip
    if init.returncode != 0:
        server.stop()
        raise PostgresUnavailableError(f"initdb failed: {init.stderr.strip()[-800:]}")
    for _ in range(3):  # a free port can be taken between the probe and the bind
        server.port = free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {server.port} -c unix_socket_directories='' "
            # Throwaway data: durability only costs time.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c timezone=UTC"
        )
        started = server._run(
            str(pg_bin / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "server.log"),
            "-w", "-t", "60", "-o", options, "start",
        )  # fmt: skip
        if started.returncode == 0:
            return server
    log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
    server.stop()
    raise PostgresUnavailableError(
        f"PostgreSQL did not start: {started.stderr.strip()} {log[-800:]}"
    )
