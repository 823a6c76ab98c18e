"""Test helper: a real PostgreSQL server, Debian's, in a temporary directory.

One server per test process, started on first use (`initdb`, then `pg_ctl
start`) and stopped when the process exits; each test gets a schema of its
own in it (`postgres_database`), dropped at its cleanup, so tests never see
each other's tables and a test costs a CREATE SCHEMA, not a server.

The binaries are Debian's `postgresql` package's (/usr/lib/postgresql/N/bin,
the newest N; scripts/test installs it). Without them the test errors: a
missing PostgreSQL is a broken test machine, never a reason to skip.
PostgreSQL refuses to run as root, and CI runs the tests as root: then every
command runs as `nobody` (`runuser -u nobody --`), which owns the temporary
directory. The server listens on 127.0.0.1 on a free port and on a unix
socket in its directory, trusts every local connection (user `vinom`), and
keeps nothing safe on disk (fsync off): it lives as long as the tests.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from twisted.internet import threads
from twisted.trial.unittest import TestCase

from tests.support.ports import free_tcp_port

USER = "vinom"
# The unprivileged account the server runs as when the tests run as root.
RUN_AS = "nobody"


def postgres_bin() -> Path:
    """Debian's PostgreSQL binaries (the newest installed version)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "no PostgreSQL in /usr/lib/postgresql/*/bin: install Debian's postgresql "
            "(scripts/test does)"
        )
    return found[-1].parent


class PostgresServer:
    """One PostgreSQL server in `directory` (its data, socket and log)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.port = 0
        self.running = False
        self._as: list[str] = ["runuser", "-u", RUN_AS, "--"] if os.geteuid() == 0 else []

    def _run(self, *command: str) -> str:
        done = subprocess.run(
            [*self._as, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}{log}")
        return done.stdout

    def start(self) -> None:
        binaries = postgres_bin()
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._as:
            shutil.chown(self.directory, RUN_AS)
        self._run(str(binaries / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")  # fmt: skip
        # A free port can be taken between its choice and the bind: try another.
        for attempt in range(3):
            self.port = free_tcp_port()
            settings = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.directory} -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            try:
                self._run(str(binaries / "pg_ctl"), "start", "-w", "-t", "60", "-D",
                          str(self.data), "-l", str(self.log), "-o", settings)  # fmt: skip
            except RuntimeError:
                if attempt == 2:
                    raise
                continue
            self.running = True
            return

    def url(self, options: str = "") -> str:
        """A postgresql:// URL of the server's `postgres` database."""
        query = f"?options={quote(options)}" if options else ""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres{query}"

    def execute(self, *statements: str) -> None:
        """Statements run one by one outside a transaction (blocking: from a thread)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)  # type: ignore[arg-type]

    def restart(self) -> None:
        """Stop the server (its connections cut) and start it again, as an operator's
        restart would; blocking (from a thread)."""
        self._run(str(postgres_bin() / "pg_ctl"), "restart", "-m", "fast", "-w", "-t", "60",
                  "-D", str(self.data), "-l", str(self.log))  # fmt: skip

    def stop(self) -> None:
        if self.running:
            self.running = False
            self._run(str(postgres_bin() / "pg_ctl"), "stop", "-m", "immediate", "-D",
                      str(self.data))  # fmt: skip
        shutil.rmtree(self.directory, ignore_errors=True)


_server: PostgresServer | None = None
_schemas = itertools.count(1)


def shared_postgres() -> PostgresServer:
    """This process's server, started on first use and stopped at exit."""
    global _server
    if _server is None:
        server = PostgresServer(tempfile.mkdtemp(prefix="vinom-postgres-"))
        atexit.register(server.stop)
        server.start()
        _server = server
    return _server


async def postgres_database(case: TestCase) -> str:
    """A URL whose connections see an empty schema of their own, dropped at the
    test's cleanup."""
    server = await threads.deferToThread(shared_postgres)
    schema = f"test_{os.getpid()}_{next(_schemas)}"
    await threads.deferToThread(server.execute, f"CREATE SCHEMA {schema}")
    case.addCleanup(threads.deferToThread, server.execute, f"DROP SCHEMA {schema} CASCADE")
    return server.url(f"-c search_path={schema}")
