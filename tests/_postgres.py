"""A throwaway PostgreSQL for the store tests: Debian's server on a free port, once a session.

`make test` installs Debian's `postgresql` (as it does redis-server). The server runs
from a fresh `initdb` in a temporary folder (as the `postgres` user when we are root,
since PostgreSQL refuses to run as root), with durability off: it only has to be fast
and real. Each test gets a database of its own. Without the binaries these tests skip,
except under CI=true, where they fail.
"""

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from app.web.devserver import free_port, wait_until
from tests._requires import missing

FAST = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]


def postgres_bin() -> Path | None:
    """The folder with initdb and postgres: $BACKBEAT_PG_BIN, else Debian's newest."""
    if env := os.environ.get("BACKBEAT_PG_BIN"):
        return Path(env)
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3])
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


def require_postgres() -> Path:
    folder = postgres_bin()
    if folder is None or not (folder / "initdb").exists():
        message = "no PostgreSQL server: install Debian's `postgresql` (make test does)"
        missing(message)
    return folder


class PostgresServer:
    """`initdb` then `postgres` on 127.0.0.1:FREE, trusting local connections as `postgres`."""

    def __init__(self, bin_dir: Path, *, durable: bool = False) -> None:
        self.bin, self.port, self.durable = bin_dir, free_port(), durable
        self.user = "postgres" if os.geteuid() == 0 else None  # PostgreSQL refuses root
        # as root, under /tmp: the postgres user must reach it (a $TMPDIR may be root's own)
        where = "/tmp" if self.user else None
        self.folder = Path(tempfile.mkdtemp(prefix="backbeat-pg-", dir=where))
        self.data = self.folder / "data"
        self.proc: subprocess.Popen | None = None
        self._names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run_as(self) -> dict:
        return {"user": self.user, "group": self.user} if self.user else {}

    def start(self) -> "PostgresServer":
        if self.user:
            shutil.chown(self.folder, self.user, self.user)
        if not self.data.exists():
            initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres"]
            initdb += ["-A", "trust", "-E", "UTF8", "--no-sync"]
            done = subprocess.run(
                initdb, capture_output=True, text=True, cwd=self.folder, **self._run_as()
            )
            if done.returncode:
                raise AssertionError(f"initdb failed ({done.returncode}):\n{done.stderr}")
        argv = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        argv += ["-c", "listen_addresses=127.0.0.1", "-k", str(self.folder)]
        argv += [] if self.durable else FAST  # bench/store.py measures a durable one
        log = open(self.folder / "postgres.log", "ab")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=log, cwd=self.folder, **self._run_as()
        )
        log.close()
        wait_until(self.answers, 30, f"postgres on port {self.port}")
        return self

    def answers(self) -> bool:
        import psycopg

        if self.proc.poll() is not None:
            tail = (self.folder / "postgres.log").read_text()[-2000:]
            raise AssertionError(f"postgres exited with {self.proc.returncode}:\n{tail}")
        try:
            with psycopg.connect(self.url(), connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """A fast shutdown (SIGINT): clients are cut off, the data folder stays for a restart."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


_shared: dict[str, object] = {"server": None, "users": 0}


@pytest.fixture(scope="session")
def postgres_server():
    """One server for the whole session: each test module that imports this fixture gets
    its own session fixture from pytest, so they share the server through `_shared`."""
    if _shared["server"] is None:
        _shared["server"] = PostgresServer(require_postgres()).start()
    _shared["users"] += 1
    yield _shared["server"]
    _shared["users"] -= 1
    if not _shared["users"]:
        _shared["server"].remove()
        _shared["server"] = None


@pytest.fixture
def postgres_url(postgres_server):
    """A database of this test's own on the session's server."""
    url = postgres_server.new_database()
    yield url
    postgres_server.drop_database(url)
