"""Run history in one SQLite file (WAL): configs, states, events and every step's metrics.

Steps arrive in columnar numpy blocks and are buffered in memory; `flush()` writes each
run's buffered blocks as chunk rows (up to CHUNK_ROWS steps, with their step range): the
columns' raw little-endian bytes, byte-shuffled (HDF5-style: all first bytes, then all
second bytes, ...) and zlib-compressed. `step`, `t` and `epoch` are kept exactly
(int64/float64/int64); metrics are rounded to float32 when appended (about 7 significant
digits; NaN/inf survive, magnitudes beyond 3.4e38 become inf) and read back as float64,
so reads agree before and after a flush and a million steps take about 40 MB.
"""

import json
import math
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

DB_NAME = "backbeat.db"
LIVE_STATES = ("starting", "running", "paused")
FINISHED_STATES = ("finished", "stopped", "diverged", "failed", "interrupted")
CHUNK_ROWS = 65_536  # at most this many steps per chunk row, so range reads skip most rows
# column -> (dtype as written and read back, dtype on disk)
METRICS = ("loss", "accuracy", "entropy", "crescendo", "act_rms", "grad_norm", "update_ratio")
COLUMNS = {"step": ("int64", "<i8"), "t": ("float64", "<f8"), "epoch": ("int64", "<i8")}
COLUMNS |= {name: ("float64", "<f4") for name in METRICS}
PER_LAYER = ("act_rms", "grad_norm", "update_ratio")  # shape (n, L), L = weight layers

SCHEMA = """
PRAGMA auto_vacuum = FULL;  -- deleted runs give their space back (new files only)
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA journal_size_limit = 4194304;  -- the WAL shrinks back after checkpoints
BEGIN IMMEDIATE;  -- takes the write lock now, so a locked database fails at startup
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, step INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL, updated REAL NOT NULL,
    config TEXT NOT NULL, layers TEXT NOT NULL, summary TEXT);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, first INTEGER NOT NULL,
    last INTEGER NOT NULL, n INTEGER NOT NULL, width INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_run ON chunks (run_id, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, type TEXT NOT NULL, step INTEGER,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, id);
COMMIT;
"""

Block = dict[str, np.ndarray]


class StoreError(RuntimeError):
    """The run store cannot be used; the message says why in one line, naming the file."""


def _finite(obj):
    """JSON has no NaN/Infinity (and `JSON.parse` rejects them), so they become null."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _dumps(obj) -> str:
    return json.dumps(_finite(obj), allow_nan=False, separators=(",", ":"))


# words in SQLite's terse error -> a sentence a user can act on
REASONS = {
    "locked": "is locked by another process (another Backbeat server on this data folder?)",
    "not a database": "is not a valid database (corrupt?); move it aside to start afresh",
    "malformed": "is corrupt; move it aside to start afresh",
    "full": "cannot grow: the disk is full",
    "readonly": "cannot be written: is the data folder read-only?",
    "unable to open": "cannot be opened: is the data folder read-only?",
}


def _explain(path: Path, exc: sqlite3.Error) -> str:
    why = next((why for word, why in REASONS.items() if word in str(exc)), f"failed: {exc}")
    return f"run store {path} {why}"


def _ids(db: sqlite3.Connection, sql: str, args: tuple) -> list[str]:
    return [row[0] for row in db.execute(sql, args)]


def _concat(blocks: list[Block]) -> Block:
    return {name: np.concatenate([b[name] for b in blocks]) for name in COLUMNS}


def _encode(block: Block) -> bytes:
    """Shuffled bytes compress far better: exponents and high bytes repeat step to step."""
    parts = []
    for name, (_, disk) in COLUMNS.items():
        raw = np.ascontiguousarray(block[name], dtype=disk).view(np.uint8)
        parts.append(raw.reshape(-1, np.dtype(disk).itemsize).T.tobytes())
    return zlib.compress(b"".join(parts), 1)


def _decode(data: bytes, n: int, width: int) -> Block:
    buf, pos, block = zlib.decompress(data), 0, {}
    for name, (dtype, disk) in COLUMNS.items():
        count, size = n * width if name in PER_LAYER else n, np.dtype(disk).itemsize
        raw = np.frombuffer(buf, np.uint8, count * size, pos).reshape(size, count)
        col = np.ascontiguousarray(raw.T).view(disk).astype(dtype).reshape(count)
        block[name] = col.reshape(n, width) if name in PER_LAYER else col
        pos += count * size
    return block


def _empty(width: int) -> Block:
    shapes = {name: (0, width) if name in PER_LAYER else 0 for name in COLUMNS}
    return {name: np.zeros(shapes[name], dtype) for name, (dtype, _) in COLUMNS.items()}


class RunStore:
    """Every run's history, safe to call from training threads and the event loop."""

    def __init__(self, data_dir: Path, *, max_runs: int = 200, busy_timeout: float = 5.0):
        self.path = Path(data_dir) / DB_NAME
        self.max_runs = max_runs
        self._lock = threading.RLock()  # guards the connection
        self._pending_lock = threading.Lock()  # guards the buffers; appends never wait on disk
        self._steps: dict[str, list[Block]] = {}
        self._events: dict[str, list[tuple[str, int | None, str]]] = {}
        try:
            Path(data_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create data folder {data_dir}: {exc.strerror}") from exc
        with self._guard():
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                self._db.row_factory = sqlite3.Row
                self._db.executescript(SCHEMA)
            except sqlite3.Error:
                self._db.close()
                raise

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._lock:
                self._db.close()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(_explain(self.path, exc)) from exc

    def _query(self, sql: str, args: tuple) -> list[sqlite3.Row]:
        with self._lock, self._guard():
            return self._db.execute(sql, args).fetchall()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; rolled back whole on any error."""
        with self._lock, self._guard():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.rollback()
                raise

    def create_run(self, run_id: str, config: dict, layers: list[int], created: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs (id, state, created, updated, config, layers)"
                " VALUES (?, 'starting', ?, ?, ?, ?)",
                (run_id, created, created, _dumps(config), _dumps(layers)),
            )

    def set_state(
        self, run_id: str, state: str, *, step: int | None = None, summary: dict | None = None
    ) -> None:
        with self._tx() as db:
            changed = db.execute(
                "UPDATE runs SET state = ?, updated = ?, step = COALESCE(?, step),"
                " summary = COALESCE(?, summary) WHERE id = ?",
                (state, time.time(), step, None if summary is None else _dumps(summary), run_id),
            ).rowcount
            if not changed:
                raise KeyError(run_id)

    def append_steps(self, run_id: str, columns: dict[str, np.ndarray]) -> None:
        n = len(columns["step"])
        if n == 0:
            return
        block = {}
        with np.errstate(over="ignore"):
            for name, (dtype, disk) in COLUMNS.items():
                col = np.asarray(columns[name], disk).astype(dtype)  # a copy: buffers get reused
                block[name] = col.reshape((n, -1) if name in PER_LAYER else n)
        with self._pending_lock:
            self._steps.setdefault(run_id, []).append(block)

    def append_event(self, run_id: str, event: dict) -> None:
        row = (str(event.get("type")), event.get("step"), _dumps(event))
        with self._pending_lock:
            self._events.setdefault(run_id, []).append(row)

    def flush(self) -> None:
        """Writes everything buffered in one transaction; the buffer is kept if it fails."""
        if not self._steps and not self._events:
            return
        with self._lock:
            with self._pending_lock:
                steps = {run_id: list(blocks) for run_id, blocks in self._steps.items()}
                events = {run_id: list(rows) for run_id, rows in self._events.items()}
            with self._tx() as db:
                for run_id, blocks in steps.items():
                    self._write_steps(db, run_id, _concat(blocks))
                for run_id, rows in events.items():
                    db.executemany(
                        "INSERT INTO events (run_id, type, step, data) SELECT ?, ?, ?, ?"
                        " WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?)",
                        [(run_id, *row, run_id) for row in rows],
                    )
            with self._pending_lock:  # drop what was written; later appends stay buffered
                for buffers, written in ((self._steps, steps), (self._events, events)):
                    for run_id, items in written.items():
                        del buffers[run_id][: len(items)]
                        if not buffers[run_id]:
                            del buffers[run_id]

    def _write_steps(self, db: sqlite3.Connection, run_id: str, cols: Block) -> None:
        last = int(cols["step"].max())
        if not db.execute(
            "UPDATE runs SET step = MAX(step, ?) WHERE id = ?", (last, run_id)
        ).rowcount:
            return  # the run was deleted while its steps were buffered
        n, width = len(cols["step"]), cols["grad_norm"].shape[1]
        for lo in range(0, n, CHUNK_ROWS):
            chunk = {name: col[lo : lo + CHUNK_ROWS] for name, col in cols.items()}
            step = chunk["step"]
            db.execute(
                "INSERT INTO chunks (run_id, first, last, n, width, data) VALUES (?,?,?,?,?,?)",
                (run_id, int(step.min()), int(step.max()), len(step), width, _encode(chunk)),
            )

    def list_runs(self) -> list[dict]:
        return self._runs("ORDER BY created DESC, rowid DESC", ())

    def get_run(self, run_id: str) -> dict | None:
        runs = self._runs("WHERE id = ?", (run_id,))
        return runs[0] if runs else None

    def _runs(self, where: str, args: tuple) -> list[dict]:
        sql = f"SELECT id, state, step, created, updated, config, layers, summary FROM runs {where}"
        runs = [dict(row) for row in self._query(sql, args)]
        for run in runs:
            for key in ("config", "layers", "summary"):
                run[key] = None if run[key] is None else json.loads(run[key])
        return runs

    def read_steps(
        self, run_id: str, *, every: int = 1, start: int = 0, stop: int | None = None
    ) -> dict[str, np.ndarray]:
        stop = 2**63 - 1 if stop is None else stop
        with self._lock:
            rows = self._query(
                "SELECT data, n, width FROM chunks WHERE run_id = ? AND last >= ? AND first < ?"
                " ORDER BY id",
                (run_id, start, stop),
            )
            layers = self._query("SELECT layers FROM runs WHERE id = ?", (run_id,))
            with self._pending_lock:
                pending = list(self._steps.get(run_id, []))
        blocks = [_decode(*row) for row in rows] + pending
        if not blocks:
            return _empty(max(len(json.loads(layers[0][0])) - 1, 0) if layers else 0)
        cols = _concat(blocks)
        keep = np.flatnonzero((cols["step"] >= start) & (cols["step"] < stop))[::every]
        return {name: col[keep] for name, col in cols.items()}

    def read_events(self, run_id: str, *, types: set[str] | None = None) -> list[dict]:
        with self._lock:
            rows = self._query(
                "SELECT type, data FROM events WHERE run_id = ? ORDER BY id", (run_id,)
            )
            with self._pending_lock:
                rows += [(kind, data) for kind, _, data in self._events.get(run_id, [])]
        return [json.loads(data) for kind, data in rows if types is None or kind in types]

    def delete_run(self, run_id: str) -> bool:
        with self._tx() as db:
            with self._pending_lock:
                self._steps.pop(run_id, None)
                self._events.pop(run_id, None)
            deleted = self._delete(db, run_id)
        return self._shrink(deleted)

    @staticmethod
    def _delete(db: sqlite3.Connection, run_id: str) -> bool:
        db.execute("DELETE FROM chunks WHERE run_id = ?", (run_id,))
        db.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
        return db.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount > 0

    def mark_interrupted(self) -> list[str]:
        """At startup, runs that were live when the server died can never resume."""
        with self._tx() as db:
            ids = _ids(
                db,
                f"SELECT id FROM runs WHERE state IN ({', '.join('?' * len(LIVE_STATES))})",
                LIVE_STATES,
            )
            db.executemany(
                "UPDATE runs SET state = 'interrupted', updated = ? WHERE id = ?",
                [(time.time(), run_id) for run_id in ids],
            )
        return ids

    def prune(self) -> list[str]:
        """Keeps the history bounded; live runs are never pruned."""
        with self._tx() as db:
            excess = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] - self.max_runs
            oldest = (
                f"SELECT id FROM runs WHERE state IN ({', '.join('?' * len(FINISHED_STATES))})"
                " ORDER BY created, rowid LIMIT ?"
            )
            ids = _ids(db, oldest, (*FINISHED_STATES, max(excess, 0)))
            for run_id in ids:
                self._delete(db, run_id)
        self._shrink(bool(ids))
        return ids

    def _shrink(self, deleted: bool) -> bool:
        """Moves freed pages out of the WAL now, so the files shrink at once."""
        if deleted:
            self._query("PRAGMA wal_checkpoint(TRUNCATE)", ())
        return deleted

    def disk_bytes(self) -> int:
        files = [self.path.with_name(self.path.name + suffix) for suffix in ("", "-wal", "-shm")]
        return sum(f.stat().st_size for f in files if f.exists())
