"""Your own data: a CSV (or drawn points) checked cell by cell and turned into a run's dataset.

Pure code, no I/O: bytes or rows in, a `Table` (or a `TableError` naming the row or
column) out. Rows are numbered as a spreadsheet shows them: the header is row 1.
"""

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.engine.datasets import DATASETS, EXTENT, Dataset, DatasetSpec, featurize, split

MAX_BYTES = 5 * 1024 * 1024  # largest CSV accepted (5 MiB)
MAX_ROWS = 10_000  # data rows, not counting the header
MAX_COLUMNS = 64  # columns in the file, the target included
MIN_ROWS = 4  # so the seeded split leaves examples on both sides
MAX_CLASSES = 16  # output units a classification set may ask for
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.()-]{0,63}$"  # what a saved set may be called
KINDS = ("csv", "drawn")  # an uploaded file, or points drawn on the page
TASKS = ("classification", "regression")
MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}  # cells that mean "no value"
EXTENT_PAD = 0.25  # standardised 2-D sets: heatmap margin around the data, in std units


class TableError(ValueError):
    """Bad input, in one sentence that names the row and/or column at fault."""


@dataclass(frozen=True, eq=False)
class Table:
    """A validated set: raw input columns, encoded targets, and how to read them."""

    inputs: list[str]  # the input columns' names, in file order
    target: str
    task: str  # "classification" | "regression"
    classes: list[str]  # class labels in index order (empty for regression)
    x: np.ndarray  # (rows, inputs) float64, as in the file
    y: np.ndarray  # (rows,) class index or target value, float64
    kind: str = "csv"  # drawn sets keep the page's coordinates; CSVs are standardised
    ignored: tuple[str, ...] = ()  # text columns that were not used as inputs

    @property
    def standardized(self) -> bool:
        return self.kind == "csv"

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.task == "classification" else 0

    @property
    def is_2d(self) -> bool:
        return len(self.inputs) == 2

    @property
    def hash(self) -> str:
        """Content hash: equal data, target, task and kind give the same set (and run data)."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def header(self) -> dict:
        meta = {"inputs": self.inputs, "target": self.target, "task": self.task}
        return meta | {"classes": self.classes, "kind": self.kind, "ignored": list(self.ignored)}

    def to_bytes(self) -> bytes:
        """A JSON header line, then x and y as little-endian float64: stored and hashed as is."""
        head = json.dumps(self.header(), separators=(",", ":"), sort_keys=True).encode()
        x = np.ascontiguousarray(self.x, "<f8").tobytes()
        return head + b"\n" + x + np.ascontiguousarray(self.y, "<f8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Table":
        head, _, body = data.partition(b"\n")
        meta = json.loads(head)
        arr = np.frombuffer(body, "<f8").astype(np.float64)
        n = len(arr) // (len(meta["inputs"]) + 1)
        x = arr[: n * len(meta["inputs"])].reshape(n, len(meta["inputs"]))
        return cls(
            meta["inputs"], meta["target"], meta["task"], meta["classes"], x,
            arr[n * len(meta["inputs"]) :], meta["kind"], tuple(meta["ignored"]),
        )  # fmt: skip

    def rows(self) -> list[list]:
        """The set as the rows it came from (the header first), targets as their labels."""
        labels = [self.classes[int(v)] for v in self.y] if self.classes else self.y.tolist()
        body = [[*xs, t] for xs, t in zip(self.x.tolist(), labels, strict=True)]
        return [[*self.inputs, self.target], *body]


def check_name(name: str) -> str:
    """A saved set's name: short, plain, and not a built-in set's."""
    name = name.strip()
    if not re.match(NAME_PATTERN, name):
        raise TableError(
            "a dataset name needs 1 to 64 letters, digits, spaces or _ . ( ) -,"
            " starting with a letter or digit"
        )
    if name.lower() in DATASETS:
        raise TableError(f"{name!r} is a built-in dataset; pick another name")
    return name


def parse_csv(data: bytes) -> list[list[str]]:
    """Bytes of a UTF-8 CSV → rows of cells (header first), within the stated limits."""
    if len(data) > MAX_BYTES:
        raise TableError(f"the file is {len(data) / 2**20:.1f} MiB; the limit is 5 MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = data[: exc.start].count(b"\n") + 1
        raise TableError(
            f"row {row}: byte 0x{data[exc.start]:02x} is not UTF-8 text;"
            " save the file as CSV UTF-8 and upload it again"
        ) from exc
    if "\x00" in text:
        raise TableError("the file holds NUL bytes: is it a spreadsheet rather than a CSV?")
    if not text.strip():
        raise TableError("the file is empty: the first row should name the columns")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [r for r in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise TableError(f"the file is not a readable CSV: {exc}") from exc
    return rows


def _number(cell: str) -> float | None:
    """A numeric cell's value, or None when the cell is not a number (or is missing)."""
    try:
        return float(cell)
    except ValueError:
        return None


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING


def build_table(
    rows: Sequence[Sequence], target: str | None = None, task: str | None = None, kind: str = "csv"
) -> Table:
    """Header and data rows → a Table: numeric columns are inputs, `target` is predicted.

    `target` defaults to the last column; `task` to classification when the target has at
    most MAX_CLASSES distinct values or is text, else regression.
    """
    if kind not in KINDS:
        raise TableError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
    if not rows:
        raise TableError("the file is empty: the first row should name the columns")
    header = [str(c).strip() for c in rows[0]]
    body = [r if all(type(c) is str for c in r) else [_cell(c) for c in r] for r in rows[1:]]
    _check_shape(header, body)
    target = header[-1] if target is None else target.strip()
    if target not in header:
        raise TableError(f"there is no column named {target!r}; the columns are: {_names(header)}")
    t = header.index(target)
    inputs, columns, ignored = [], [], []
    cells_by_column = list(zip(*body, strict=True))
    for j, name in enumerate(header):
        if j == t:
            continue
        values = _numeric_column(body, cells_by_column[j], j, name)
        if values is None:
            ignored.append(name)
        else:
            inputs.append(name)
            columns.append(values)
    if not inputs:
        raise TableError(f"no numeric column is left to learn from besides the target {target!r}")
    cells = [r[t] for r in body]
    for i, cell in enumerate(cells):
        if _is_missing(cell):
            raise TableError(f"row {i + 2}, column {target!r}: the target is missing")
    task = task or _guess_task(cells)
    if task not in TASKS:
        raise TableError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    classes, y = _targets(cells, target, task)
    x = np.column_stack(columns).astype(np.float64)
    if kind == "drawn":
        _check_drawn(x, y, inputs, task)
    return Table(inputs, target, task, classes, x, y, kind, tuple(ignored))


def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    return value if isinstance(value, str) else repr(value)


def _names(header: list[str]) -> str:
    return ", ".join(repr(n) for n in header)


def _check_shape(header: list[str], body: list[list[str]]) -> None:
    if len(header) > MAX_COLUMNS:
        raise TableError(f"the file has {len(header)} columns; the limit is {MAX_COLUMNS}")
    if len(header) < 2:
        raise TableError("the first row names one column; a set needs an input and a target")
    seen: dict[str, int] = {}
    for j, name in enumerate(header):
        if not name:
            raise TableError(f"column {j + 1} has no name in the first row")
        if name in seen:
            raise TableError(f"columns {seen[name] + 1} and {j + 1} are both named {name!r}")
        seen[name] = j
    if len(body) > MAX_ROWS:
        raise TableError(f"the file has {len(body):,} data rows; the limit is {MAX_ROWS:,}")
    if len(body) < MIN_ROWS:
        raise TableError(f"the file has {len(body)} data rows; a set needs at least {MIN_ROWS}")
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise TableError(
                f"row {i + 2} has {len(r)} cells; the first row names {len(header)} columns"
            )


def _numeric_column(
    body: Sequence[Sequence[str]], cells: Sequence[str], j: int, name: str
) -> np.ndarray | None:
    """A column's numbers; None for a text column (no numeric cell) which is left out."""
    try:  # the common case in C; a bad cell falls through to the search that names it
        fast = np.array(cells, dtype=np.float64)
        if np.isfinite(fast).all():
            return fast
    except ValueError:
        pass
    values = [_number(c) for c in cells]
    if all(v is None for v in values):
        return None
    for i, (r, v) in enumerate(zip(body, values, strict=True)):
        if _is_missing(r[j]) or (v is not None and math.isnan(v)):
            raise TableError(f"row {i + 2}, column {name!r}: the value is missing")
        if v is None:
            raise TableError(f"row {i + 2}, column {name!r}: {r[j][:40]!r} is not a number")
        if not math.isfinite(v):
            raise TableError(f"row {i + 2}, column {name!r}: {r[j][:40]!r} is not a finite number")
    return np.array(values, dtype=np.float64)


def _guess_task(cells: list[str]) -> str:
    numbers = [_number(c) for c in cells]
    if any(v is None for v in numbers) or len(set(cells)) <= MAX_CLASSES:
        return "classification"
    return "regression"


def _targets(cells: list[str], target: str, task: str) -> tuple[list[str], np.ndarray]:
    if task == "regression":
        values = [_number(c) for c in cells]
        for i, (c, v) in enumerate(zip(cells, values, strict=True)):
            if v is None or not math.isfinite(v):
                raise TableError(
                    f"row {i + 2}, column {target!r}: {c[:40]!r} is not a number,"
                    " and a regression target must be"
                )
        return [], np.array(values, dtype=np.float64)
    labels = [c.strip() for c in cells]
    distinct = set(labels)
    if len(distinct) < 2:
        raise TableError(
            f"column {target!r} has one class only ({labels[0]!r}); classification needs two"
        )
    if len(distinct) > MAX_CLASSES:
        raise TableError(
            f"column {target!r} has {len(distinct)} classes; the limit is {MAX_CLASSES}"
            " (is it a regression target?)"
        )
    numeric = all(_number(c) is not None for c in distinct)
    classes = sorted(distinct, key=(lambda c: (float(c), c)) if numeric else None)
    index = {c: k for k, c in enumerate(classes)}
    return classes, np.array([index[c] for c in labels], dtype=np.float64)


def _check_drawn(x: np.ndarray, y: np.ndarray, inputs: list[str], task: str) -> None:
    """Drawn points live on the output area: two inputs inside the built-in sets' square."""
    if len(inputs) != 2:
        raise TableError(f"a drawn set has two inputs (x1, x2), not {len(inputs)}")
    lo, hi = EXTENT[0], EXTENT[1]
    outside = np.flatnonzero(((x < lo) | (x > hi)).any(axis=1))
    if len(outside):
        raise TableError(f"row {outside[0] + 2}: drawn points must lie within [{lo:g}, {hi:g}]")
    if task == "regression" and (np.abs(y) > 1).any():
        row = int(np.flatnonzero(np.abs(y) > 1)[0]) + 2
        raise TableError(f"row {row}: a drawn regression target must lie within [-1, 1]")


def table_spec(name: str, table: Table) -> DatasetSpec:
    how = "drawn on the page" if table.kind == "drawn" else "uploaded, inputs standardised"
    return DatasetSpec(
        name,
        table.task,
        table.n_classes,
        table.is_2d,
        f"{len(table.y):,} rows, {len(table.inputs)} inputs ({how})",
    )


def _standardise(a: np.ndarray) -> np.ndarray:
    """Mean 0, standard deviation 1 per column (a constant column becomes all zeros)."""
    std = a.std(axis=0)
    return (a - a.mean(axis=0)) / np.where(std > 0, std, 1.0)


def table_dataset(
    name: str, table: Table, *, train_ratio: float, seed: int, features: Sequence[str]
) -> Dataset:
    """A table as a run's data: standardised (CSV sets), shuffled and split by the seed."""
    x, y = table.x, table.y
    if table.standardized:
        x = _standardise(x)
        if table.task == "regression":
            y = _standardise(y)
    train, test = split(np.random.default_rng(seed), len(y), train_ratio)
    points, extent, target_range = None, None, None
    if table.task == "regression":
        target_range = (-1.0, 1.0) if table.kind == "drawn" else (float(y.min()), float(y.max()))
        if target_range[0] == target_range[1]:
            target_range = (target_range[0] - 1.0, target_range[1] + 1.0)
    if table.is_2d:
        points, x = x, featurize(x, features)
        extent = EXTENT if table.kind == "drawn" else _extent(points)
    return Dataset(
        spec=table_spec(name, table),
        features=list(features) if table.is_2d else list(table.inputs),
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        points_train=None if points is None else points[train],
        points_test=None if points is None else points[test],
        extent=extent,
        target_range=target_range,
    )


def _extent(points: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = points.min(axis=0) - EXTENT_PAD, points.max(axis=0) + EXTENT_PAD
    lo, hi = np.where(hi - lo > 0, lo, lo - 1), np.where(hi - lo > 0, hi, hi + 1)
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])
