"""The run store's one contract and all its logic; SQLite and PostgreSQL supply a connection.

Steps arrive in columnar numpy blocks and are buffered in memory; `flush()` writes each
run's buffered blocks as chunk rows (up to CHUNK_ROWS steps, with their step range, encoded
by app/store/codec.py). Events and weight snapshots (one row per kept evaluation, bounded
per run by app/live/snapshots.py) are buffered and written the same way.

Every statement is written once, with `?` placeholders, in the SQL both databases speak;
a `Dialect` names the few words that differ (column types, the row order, two functions).
"""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.engine.grid import current
from app.engine.steps import concat_blocks, empty_block
from app.live.states import ENDED_STATES, LIVE_STATES, RunState
from app.store import codec
from app.store.codec import NAMES, Block

CHUNK_ROWS = 65_536  # at most this many steps per chunk row, so range reads skip most rows

# {int} 64-bit integer, {real} 64-bit float, {blob} bytes, {serial} an autoincrement key,
# {order} a column giving insertion order to `runs`, {nocase} a case-blind text collation
TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, step {int} NOT NULL DEFAULT 0,
    created {real} NOT NULL, updated {real} NOT NULL,
    config TEXT NOT NULL, layers TEXT NOT NULL, summary TEXT{order_column});
CREATE TABLE IF NOT EXISTS chunks (
    id {serial}, run_id TEXT NOT NULL, first {int} NOT NULL,
    last {int} NOT NULL, n {int} NOT NULL, width {int} NOT NULL, data {blob} NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_run ON chunks (run_id, id);
CREATE TABLE IF NOT EXISTS events (
    id {serial}, run_id TEXT NOT NULL, type TEXT NOT NULL, step {int},
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, id);
CREATE TABLE IF NOT EXISTS snapshots (
    run_id TEXT NOT NULL, step {int} NOT NULL, meta TEXT NOT NULL, data {blob} NOT NULL,
    PRIMARY KEY (run_id, step));
"""

RUN_FIELDS = ("id", "state", "step", "created", "updated", "config", "layers", "summary")


@dataclass(frozen=True)
class Dialect:
    """The words in which SQLite's and PostgreSQL's SQL differ, for the store's statements."""

    types: dict[str, str]  # fills TABLES (and app/store/tables.py's SCHEMA)
    order: str  # the column that orders runs by insertion
    greatest: str  # the larger of two values
    find: str  # find(haystack, needle) > 0 when needle is in haystack

    def schema(self, template: str) -> str:
        return template.format(**self.types)


class StoreError(RuntimeError):
    """The run store cannot be used; the message says why in one line, naming the store."""


def _marks(values) -> str:
    """`(?, ?, ...)`: one placeholder per value of an IN clause."""
    return f"({', '.join('?' * len(values))})"


def _ids(db, sql: str, args: tuple) -> list[str]:
    return [row[0] for row in db.execute(sql, args).fetchall()]


class Store:
    """Every run's history, safe to call from training threads and the event loop.

    A backend sets `dialect` and `errors`, opens `_db` (anything with `execute(sql, args)`
    and `executemany`, `?` placeholders, cursors with `fetchall`, `fetchone`, `rowcount`)
    and says how its failures read (`_explain`), how to run a schema (`_script`), how to
    give space back (`_shrink`) and how big it is (`disk_bytes`).
    """

    dialect: Dialect
    errors: tuple[type[BaseException], ...]
    where: str  # names the store in messages: a file, or a redacted URL
    begin = "BEGIN"

    def __init__(self, *, max_runs: int = 200) -> None:
        self.max_runs = max_runs
        self._lock = threading.RLock()  # guards the connection
        self._pending_lock = threading.Lock()  # guards the buffers; appends never wait on disk
        self._steps: dict[str, list[Block]] = {}
        self._events: dict[str, list[tuple[str, int | None, str]]] = {}
        self._snapshots: dict[str, dict[int, tuple[str, bytes]]] = {}  # run -> step -> row
        self._snapshot_drops: dict[str, set[int]] = {}  # run -> steps to delete on disk
        self._db: Any = None

    # -- what a backend supplies -----------------------------------------------------------
    def _explain(self, exc: BaseException) -> str:
        return f"run store {self.where} failed: {exc}"

    def _script(self, template: str) -> None:
        """Create the tables of a schema template (TABLES, or another module's) if missing."""
        raise NotImplementedError

    def _connection(self):
        """The open connection (a backend may reconnect here); called with the lock held."""
        return self._db

    def _shrink(self, deleted: bool) -> bool:
        return deleted

    def disk_bytes(self) -> int:
        raise NotImplementedError

    def _close_connection(self) -> None:
        if self._db is not None:
            self._db.close()

    # -- connection plumbing ----------------------------------------------------------------
    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._lock:
                self._close_connection()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except self.errors as exc:
            raise StoreError(self._explain(exc)) from exc

    def _query(self, sql: str, args: tuple) -> list:
        with self._lock, self._guard():
            return self._connection().execute(sql, args).fetchall()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One short write transaction; rolled back whole on any error."""
        with self._lock, self._guard():
            db = self._connection()
            db.execute(self.begin, ())
            try:
                yield db
                db.execute("COMMIT", ())
            except BaseException:
                self._rollback(db)
                raise

    def _rollback(self, db) -> None:
        with suppress(*self.errors):  # a connection that is gone rolled back on its own
            db.rollback()

    # -- the contract -----------------------------------------------------------------------
    def create_run(self, run_id: str, config: dict, layers: list[int], created: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs (id, state, created, updated, config, layers)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    RunState.STARTING,
                    created,
                    created,
                    codec.dumps(config),
                    codec.dumps(layers),
                ),
            )

    def set_state(
        self, run_id: str, state: str, *, step: int | None = None, summary: dict | None = None
    ) -> None:
        summary_json = None if summary is None else codec.dumps(summary)
        if state in ENDED_STATES:  # another process that reads `finished` finds every step
            with suppress(StoreError):  # the state still goes in; the flusher retries the rest
                self.flush()
        with self._tx() as db:
            changed = db.execute(
                "UPDATE runs SET state = ?, updated = ?, step = COALESCE(?, step),"
                " summary = COALESCE(?, summary) WHERE id = ?",
                (state, time.time(), step, summary_json, run_id),
            ).rowcount
            if not changed:
                raise KeyError(run_id)

    def append_steps(self, run_id: str, columns: dict[str, np.ndarray]) -> None:
        n = len(columns["step"])
        if n == 0:
            return
        block = {}
        with np.errstate(over="ignore"):
            for c in codec.COLUMNS:
                col = np.asarray(columns[c.name], c.disk).astype(
                    c.dtype
                )  # a copy: buffers get reused
                block[c.name] = col.reshape((n, -1) if c.per_layer else n)
        with self._pending_lock:
            self._steps.setdefault(run_id, []).append(block)

    def append_event(self, run_id: str, event: dict) -> None:
        row = (str(event.get("type")), event.get("step"), codec.dumps(event))
        with self._pending_lock:
            self._events.setdefault(run_id, []).append(row)

    def append_snapshot(self, run_id: str, step: int, snapshot: dict) -> None:
        """Keep the weights at an evaluation (`take_snapshot`'s dict; the plan bounds how many)."""
        row = codec.encode_snapshot(snapshot)
        with self._pending_lock:
            self._snapshots.setdefault(run_id, {})[int(step)] = row

    def drop_snapshots(self, run_id: str, steps: list[int]) -> None:
        """Forget the snapshots at these steps (the plan thinned them), buffered or written."""
        if not steps:
            return
        with self._pending_lock:
            pending = self._snapshots.get(run_id, {})
            for step in steps:
                pending.pop(int(step), None)
            # also on disk: a flush under way may be writing one of them right now
            self._snapshot_drops.setdefault(run_id, set()).update(int(s) for s in steps)

    def read_snapshot(self, run_id: str, step: int) -> dict | None:
        """The weights at the newest snapshot at or before `step`; None if there is none."""
        with self._lock:
            rows = self._query(
                "SELECT step, meta, data FROM snapshots WHERE run_id = ? AND step <= ?"
                " ORDER BY step DESC LIMIT 1",
                (run_id, min(step, 2**63 - 1)),
            )
            with self._pending_lock:
                pending = self._snapshots.get(run_id, {})
                early = [s for s in pending if s <= step]
                buffered = (max(early), *pending[max(early)]) if early else None
        found = [tuple(r) for r in rows] + ([buffered] if buffered else [])
        if not found:
            return None
        return codec.decode_snapshot(*max(found, key=lambda r: r[0]))

    def flush(self) -> None:
        """Writes everything buffered in one transaction; the buffer is kept if it fails."""
        buffers = (self._steps, self._events, self._snapshots, self._snapshot_drops)
        if not any(buffers):
            return
        with self._lock:
            with self._pending_lock:
                steps = {run_id: list(blocks) for run_id, blocks in self._steps.items()}
                events = {run_id: list(rows) for run_id, rows in self._events.items()}
                snaps = {run_id: dict(rows) for run_id, rows in self._snapshots.items()}
                drops = {run_id: set(s) for run_id, s in self._snapshot_drops.items()}
            with self._tx() as db:
                for run_id, blocks in steps.items():
                    self._write_steps(db, run_id, concat_blocks(blocks, 0, NAMES))
                for run_id, rows in events.items():
                    db.executemany(
                        "INSERT INTO events (run_id, type, step, data) SELECT ?, ?, ?, ?"
                        " WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?)",
                        [(run_id, *row, run_id) for row in rows],
                    )
                self._write_snapshots(db, snaps, drops)
            with self._pending_lock:  # drop what was written; later appends stay buffered
                for buffers, written in ((self._steps, steps), (self._events, events)):
                    for run_id, items in written.items():
                        del buffers[run_id][: len(items)]
                        if not buffers[run_id]:
                            del buffers[run_id]
                self._forget_written_snapshots(snaps, drops)

    def _forget_written_snapshots(self, snaps: dict, drops: dict) -> None:
        """After a flush (pending lock held): what it wrote leaves the buffers, nothing newer."""
        for run_id, rows in snaps.items():
            left = self._snapshots.get(run_id, {})
            for step, row in rows.items():
                if left.get(step) is row:
                    del left[step]
        for run_id, steps in drops.items():
            self._snapshot_drops.get(run_id, set()).difference_update(steps)
        for buffers in (self._snapshots, self._snapshot_drops):
            for run_id in [r for r, left in buffers.items() if not left]:
                del buffers[run_id]

    @staticmethod
    def _write_snapshots(db, snaps: dict, drops: dict) -> None:
        """Kept snapshots first, then the drops (a snapshot may be both within one flush)."""
        for run_id, rows in snaps.items():
            db.executemany(
                "INSERT INTO snapshots (run_id, step, meta, data) SELECT ?, ?, ?, ?"
                " WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?)"
                " ON CONFLICT (run_id, step) DO UPDATE SET meta = excluded.meta,"
                " data = excluded.data",
                [(run_id, step, meta, data, run_id) for step, (meta, data) in rows.items()],
            )
        for run_id, steps in drops.items():
            db.executemany(
                "DELETE FROM snapshots WHERE run_id = ? AND step = ?",
                [(run_id, step) for step in steps],
            )

    def _write_steps(self, db, run_id: str, cols: Block) -> None:
        last = int(cols["step"].max())
        if not db.execute(
            f"UPDATE runs SET step = {self.dialect.greatest}(step, ?) WHERE id = ?",
            (last, run_id),
        ).rowcount:
            return  # the run was deleted while its steps were buffered
        n, width = len(cols["step"]), cols["grad_norm"].shape[1]
        for lo in range(0, n, CHUNK_ROWS):
            chunk = {name: col[lo : lo + CHUNK_ROWS] for name, col in cols.items()}
            step = chunk["step"]
            db.execute(
                "INSERT INTO chunks (run_id, first, last, n, width, data) VALUES (?,?,?,?,?,?)",
                (
                    run_id,
                    int(step.min()),
                    int(step.max()),
                    len(step),
                    width,
                    codec.encode_steps(chunk),
                ),
            )

    def list_runs(self) -> list[dict]:
        return self._runs(f"ORDER BY created DESC, {self.dialect.order} DESC", ())

    def get_run(self, run_id: str) -> dict | None:
        runs = self._runs("WHERE id = ?", (run_id,))
        return runs[0] if runs else None

    def _runs(self, where: str, args: tuple) -> list[dict]:
        sql = f"SELECT {', '.join(RUN_FIELDS)} FROM runs {where}"
        runs = [dict(zip(RUN_FIELDS, row, strict=True)) for row in self._query(sql, args)]
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
        blocks = [codec.decode_steps(*row) for row in rows] + pending
        if not blocks:
            return empty_block(max(len(json.loads(layers[0][0])) - 1, 0) if layers else 0)
        cols = concat_blocks(blocks, 0, NAMES)
        keep = np.flatnonzero((cols["step"] >= start) & (cols["step"] < stop))[::every]
        return {name: col[keep] for name, col in cols.items()}

    def read_events(self, run_id: str, *, types: set[str] | None = None) -> list[dict]:
        with self._lock:
            rows = self._query(
                "SELECT type, data FROM events WHERE run_id = ? ORDER BY id", (run_id,)
            )
            rows = [tuple(r) for r in rows]
            with self._pending_lock:
                rows += [(kind, data) for kind, _, data in self._events.get(run_id, [])]
        # events stored by earlier versions read as they are sent now (an eval's grid)
        return [current(json.loads(data)) for kind, data in rows if types is None or kind in types]

    def delete_run(self, run_id: str) -> bool:
        with self._tx() as db:
            with self._pending_lock:
                for buffers in (self._steps, self._events, self._snapshots, self._snapshot_drops):
                    buffers.pop(run_id, None)
            deleted = self._delete(db, run_id)
        return self._shrink(deleted)

    @staticmethod
    def _delete(db, run_id: str) -> bool:
        db.execute("DELETE FROM chunks WHERE run_id = ?", (run_id,))
        db.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
        db.execute("DELETE FROM snapshots WHERE run_id = ?", (run_id,))
        return db.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount > 0

    def mark_interrupted(self) -> list[str]:
        """At startup, runs that were live when the server died can never resume."""
        with self._tx() as db:
            ids = _ids(
                db,
                f"SELECT id FROM runs WHERE state IN {_marks(LIVE_STATES)}",
                tuple(LIVE_STATES),
            )
            db.executemany(
                "UPDATE runs SET state = ?, updated = ? WHERE id = ?",
                [(RunState.INTERRUPTED, time.time(), run_id) for run_id in ids],
            )
        return ids

    def prune(self) -> list[str]:
        """Keeps the history bounded; live runs are never pruned."""
        with self._tx() as db:
            excess = db.execute("SELECT COUNT(*) FROM runs", ()).fetchone()[0] - self.max_runs
            oldest = (
                f"SELECT id FROM runs WHERE state IN {_marks(ENDED_STATES)}"
                f" ORDER BY created, {self.dialect.order} LIMIT ?"
            )
            ids = _ids(db, oldest, (*ENDED_STATES, max(excess, 0)))
            for run_id in ids:
                self._delete(db, run_id)
        self._shrink(bool(ids))
        return ids
