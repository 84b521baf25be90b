"""Uploaded and drawn datasets in the run store's database: rows by content hash, names apart.

A run keeps the hash of the set it trained on (in its config), so deleting a set's name
never takes the data from a stored run: a table's rows go only when no name and no run
refers to them any more.
"""

import json
import time

from app.engine.tables import Table
from app.store.base import Store

MAX_SETS = 100  # named uploaded or drawn sets kept at once

# a template for the store's dialect (app/store/base.py); names are case-blind
SCHEMA = """
CREATE TABLE IF NOT EXISTS tables (
    hash TEXT PRIMARY KEY, data {blob} NOT NULL, created {real} NOT NULL);
CREATE TABLE IF NOT EXISTS dataset_names (
    name TEXT PRIMARY KEY {nocase}, hash TEXT NOT NULL, created {real} NOT NULL,
    info TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS dataset_names_nocase ON dataset_names (lower(name));
"""
BY_NAME = "lower(name) = lower(?)"


class DuplicateName(ValueError):
    """A set of that name exists already, with other rows."""


class TooManySets(RuntimeError):
    """The store holds MAX_SETS named sets already."""


def describe(name: str, table: Table, created: float) -> dict:
    """A stored set as GET /api/datasets lists it (JSON-safe, small: no rows)."""
    return {
        "name": name,
        "source": "uploaded",
        "kind": table.kind,
        "hash": table.hash,
        "task": table.task,
        "n_classes": table.n_classes,
        "classes": table.classes,
        "target": table.target,
        "inputs": table.inputs,
        "columns": [*table.inputs, table.target],
        "ignored_columns": list(table.ignored),
        "rows": len(table.y),
        "standardized": table.standardized,
        "created": created,
    }


class TableStore:
    """Named sets over the run store's connection (so one database, one lock, one backup)."""

    def __init__(self, store: Store, max_sets: int = MAX_SETS) -> None:
        self.store, self.max_sets = store, max_sets
        store._script(SCHEMA)

    def save(self, name: str, table: Table) -> tuple[dict, bool]:
        """Store a set under a name; (its description, True if new). Same name and rows: kept."""
        digest, now = table.hash, time.time()
        with self.store._tx() as db:
            row = db.execute(
                f"SELECT name, hash, info FROM dataset_names WHERE {BY_NAME}", (name,)
            ).fetchone()
            if row is not None:
                known, known_hash, known_info = row
                if known_hash == digest:
                    return json.loads(known_info), False
                raise DuplicateName(
                    f"a dataset named {known!r} already exists;"
                    " pick another name or delete that one first"
                )
            if db.execute("SELECT COUNT(*) FROM dataset_names", ()).fetchone()[0] >= self.max_sets:
                raise TooManySets(f"{self.max_sets} datasets are stored; delete one first")
            info = describe(name, table, now)
            db.execute(
                "INSERT INTO tables (hash, data, created) VALUES (?, ?, ?)"
                " ON CONFLICT (hash) DO NOTHING",
                (digest, table.to_bytes(), now),
            )
            db.execute(
                "INSERT INTO dataset_names (name, hash, created, info) VALUES (?, ?, ?, ?)",
                (name, digest, now, json.dumps(info)),
            )
        return info, True

    def list(self) -> list[dict]:
        rows = self.store._query("SELECT info FROM dataset_names ORDER BY created, name", ())
        return [json.loads(r[0]) for r in rows]

    def info(self, name: str) -> dict | None:
        rows = self.store._query(f"SELECT info FROM dataset_names WHERE {BY_NAME}", (name,))
        return json.loads(rows[0][0]) if rows else None

    def by_name(self, name: str) -> Table | None:
        rows = self.store._query(
            "SELECT t.data FROM dataset_names n JOIN tables t ON t.hash = n.hash"
            " WHERE lower(n.name) = lower(?)",
            (name,),
        )
        return Table.from_bytes(rows[0][0]) if rows else None

    def by_hash(self, digest: str) -> Table | None:
        rows = self.store._query("SELECT data FROM tables WHERE hash = ?", (digest,))
        return Table.from_bytes(rows[0][0]) if rows else None

    def delete(self, name: str) -> bool:
        with self.store._tx() as db:
            gone = db.execute(f"DELETE FROM dataset_names WHERE {BY_NAME}", (name,)).rowcount > 0
        self.collect()
        return gone

    def collect(self) -> int:
        """Drop rows no name and no stored run refers to (after deletes and pruning)."""
        find = self.store.dialect.find
        with self.store._tx() as db:
            return db.execute(
                "DELETE FROM tables WHERE hash NOT IN (SELECT hash FROM dataset_names)"
                f" AND NOT EXISTS (SELECT 1 FROM runs WHERE {find}(runs.config, tables.hash) > 0)",
                (),
            ).rowcount
