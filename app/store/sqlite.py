"""Run history in one SQLite file (WAL) under the data folder: the embedded default.

The logic is app/store/base.py's; this module opens the file, says what SQLite's terse
errors mean, and gives deleted runs' space back at once. Processes on one host may share
the file (SQLite locks each write); processes on several hosts share app/store/postgres.py.
"""

import sqlite3
from pathlib import Path

from app.store.base import TABLES, Dialect, Store, StoreError

DB_NAME = "backbeat.db"

PRAGMAS = """
PRAGMA auto_vacuum = FULL;  -- deleted runs give their space back (new files only)
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA journal_size_limit = 4194304;  -- the WAL shrinks back after checkpoints
"""

SQLITE = Dialect(
    types={
        "int": "INTEGER",
        "real": "REAL",
        "blob": "BLOB",
        "serial": "INTEGER PRIMARY KEY",
        "order_column": "",  # every table has a rowid
        "nocase": "COLLATE NOCASE",
    },
    order="rowid",
    greatest="MAX",
    find="instr",
)

# words in SQLite's terse error -> a sentence a user can act on
REASONS = {
    "locked": "is locked by another process (another Backbeat server on this data folder?)",
    "not a database": "is not a valid database (corrupt?); move it aside to start afresh",
    "malformed": "is corrupt; move it aside to start afresh",
    "full": "cannot grow: the disk is full",
    "readonly": "cannot be written: is the data folder read-only?",
    "unable to open": "cannot be opened: is the data folder read-only?",
}


class RunStore(Store):
    """The run store in `data_dir/backbeat.db`."""

    dialect = SQLITE
    errors = (sqlite3.Error,)
    begin = "BEGIN IMMEDIATE"  # takes the write lock now: a busy file waits busy_timeout

    def __init__(self, data_dir: Path, *, max_runs: int = 200, busy_timeout: float = 5.0):
        super().__init__(max_runs=max_runs)
        self.path = Path(data_dir) / DB_NAME
        self.where = str(self.path)
        try:
            Path(data_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create data folder {data_dir}: {exc.strerror}") from exc
        with self._guard():
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                self._db.executescript(PRAGMAS)
                self._script(TABLES)
            except BaseException:
                self._db.close()
                raise

    def _explain(self, exc: BaseException) -> str:
        why = next((why for word, why in REASONS.items() if word in str(exc)), f"failed: {exc}")
        return f"run store {self.path} {why}"

    def _script(self, template: str) -> None:
        # BEGIN IMMEDIATE takes the write lock now, so a locked database fails at startup
        with self._lock, self._guard():
            self._db.executescript(f"BEGIN IMMEDIATE;\n{self.dialect.schema(template)}COMMIT;")

    def _shrink(self, deleted: bool) -> bool:
        """Moves freed pages out of the WAL now, so the files shrink at once."""
        if deleted:
            self._query("PRAGMA wal_checkpoint(TRUNCATE)", ())
        return deleted

    def disk_bytes(self) -> int:
        files = [self.path.with_name(self.path.name + suffix) for suffix in ("", "-wal", "-shm")]
        return sum(f.stat().st_size for f in files if f.exists())
