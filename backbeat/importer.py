"""`backbeat import PATH`: old TensorBoard logs or a CSV become a stored run to replay.

TensorBoard event files are read with the `tensorboard` package's own reader (the
`tensorboard` extra); scalar tags are mapped to Backbeat's fields by name (`loss`,
`Loss/train`, `val_loss`, `grad_norm/fc1`, ...) or by `--map TAG=FIELD`. The run goes
through the same detectors as a live outside run: crescendo, alarm, chime, overfit.
The run goes into the SQLite history under `--data`, or into the shared PostgreSQL
history with `--store postgresql://...`, as the server's own option does: every process
sharing that database then lists and replays it.
"""

import argparse
import csv
import math
import re
import secrets
import sys
import time
from pathlib import Path

from app.live.external import ExternalRun, OutsideShape
from app.live.ingest import MAX_BATCH_STEPS, MAX_EVALS, OutsideRunSpec, StepBatch
from app.store import Store, StoreError, open_store, redacted, store_url_problem
from app.web.settings import Settings, default_data_dir

FIELDS = ("loss", "accuracy", "entropy", "test_loss", "test_accuracy", "train_loss")
STEP_FIELDS = ("loss", "accuracy", "entropy")
EVAL_FIELDS = ("test_loss", "test_accuracy", "train_loss")
SPLITS = {
    "train": "",
    "training": "",
    "val": "test_",
    "valid": "test_",
    "validation": "test_",
    "test": "test_",
    "eval": "test_",
}
NAMES = {"loss": "loss", "acc": "accuracy", "accuracy": "accuracy", "entropy": "entropy"}
_GRAD = r"grad(?:ient)?s?[_ ]?(?:norms?)?"  # grad, grads, grad_norm, gradient_norms, ...
GRAD = re.compile(rf"^(?:{_GRAD}[/.](?P<a>.+)|(?P<b>.+)[/.]{_GRAD})$", re.I)

Series = dict[str, list[tuple[int, float]]]


def guess(tag: str) -> str | None:
    """The field a tag most likely means: `Loss/train` → loss, `val_acc` → test_accuracy."""
    if m := GRAD.match(tag):
        return f"grad_norm:{m['a'] or m['b']}"
    words = [w for w in re.split(r"[/_.\- ]+", tag.lower()) if w]
    split = next((SPLITS[w] for w in words if w in SPLITS), "")
    name = next((NAMES[w] for w in words if w in NAMES), None)
    if name is None:
        return None
    field = split + name
    return field if field in FIELDS else None


def read_tensorboard(path: Path) -> Series:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError as exc:
        raise SystemExit(
            "backbeat import: TensorBoard logs need the tensorboard extra: "
            "pip install 'backbeat[tensorboard]'"
        ) from exc
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def read_csv(path: Path) -> Series:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"backbeat import: {path} has no rows")
    step_key = next((k for k in rows[0] if k.lower() in ("step", "global_step", "iteration")), None)
    series: Series = {}
    for i, row in enumerate(rows):
        step = int(float(row[step_key])) if step_key else i + 1
        for key, text in row.items():
            if key == step_key or text in ("", None):
                continue
            try:
                series.setdefault(key, []).append((step, float(text)))
            except ValueError:
                continue
    return series


def assign(series: Series, overrides: dict[str, str]) -> dict[str, list[tuple[int, float]]]:
    fields: dict[str, list] = {}
    for tag, points in series.items():
        field = overrides.get(tag, guess(tag))
        if field and field not in fields:
            fields[field] = points
    if "loss" not in fields:
        raise SystemExit(
            "backbeat import: no loss found among the tags "
            f"({', '.join(sorted(series)) or 'none'}); say which with --map TAG=loss"
        )
    return fields


def batches(fields: dict) -> tuple[list[str], list[dict]]:
    """Steps where the loss was logged, with what else was logged at them, in server-sized
    batches; each evaluation travels with the batch that reaches its step."""
    layers = [f.split(":", 1)[1] for f in fields if f.startswith("grad_norm:")]
    at = {f: dict(points) for f, points in fields.items()}
    steps = sorted(at["loss"])
    evals = [
        {"step": s, **{f: _num(at[f].get(s)) for f in EVAL_FIELDS if f in at}}
        for s in sorted({s for f in EVAL_FIELDS if f in at for s in at[f]})
    ]
    out = []
    for lo in range(0, len(steps), MAX_BATCH_STEPS):
        part = steps[lo : lo + MAX_BATCH_STEPS]
        last = lo + MAX_BATCH_STEPS >= len(steps)
        body = {name: [_num(at[name].get(s)) for s in part] for name in STEP_FIELDS if name in at}
        if layers:
            body["grad_norm"] = [[_num(at[f"grad_norm:{n}"].get(s)) for n in layers] for s in part]
        due = [e for e in evals if last or e["step"] <= part[-1]]
        evals = evals[len(due) :]
        out.append({"step": part, **body, "evals": due[:MAX_EVALS]})
        out += [{"evals": due[k : k + MAX_EVALS]} for k in range(MAX_EVALS, len(due), MAX_EVALS)]
    return layers, out


def _num(x):
    return None if x is None or not math.isfinite(x) else float(x)


class StoreSink:
    """Where an imported run's steps and events go: straight into the run store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_steps(self, run_id: str, block) -> None:
        self.store.append_steps(run_id, block)

    def on_event(self, run_id: str, event: dict) -> None:
        self.store.append_event(run_id, event)
        if event["type"] in ("state", "end"):
            self.store.set_state(
                run_id, event["state"], step=event["step"], summary=event.get("summary")
            )


def import_run(
    path: Path,
    data: Path,
    name: str | None = None,
    overrides: dict[str, str] | None = None,
    store_url: str | None = None,
) -> str:
    """Store the log at `path` as a finished run (SQLite under `data`, or `store_url`)."""
    series = read_csv(path) if path.suffix.lower() == ".csv" else read_tensorboard(path)
    layers, parts = batches(assign(series, overrides or {}))
    spec = OutsideRunSpec(
        name=name or f"import {path.name}",
        layers=layers,
        config={"imported_from": str(path)[-100:]},
    )
    store = open_store(data, store_url, max_runs=Settings().max_stored_runs)  # as the servers
    try:
        run_id = secrets.token_hex(6)
        shape = OutsideShape(spec)
        store.create_run(run_id, shape.model_dump(), shape.layers, time.time())
        handle = ExternalRun(run_id, spec)
        handle.start(StoreSink(store))
        for i, part in enumerate(parts):
            if not handle.alive:
                break
            end = "finished" if i == len(parts) - 1 else None
            handle.ingest(StepBatch.model_validate({**part, "end": end}))
    finally:
        store.close()
    return run_id


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="backbeat import", description=__doc__.splitlines()[0])
    p.add_argument("path", type=Path, help="a TensorBoard log folder or event file, or a CSV")
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="TAG=FIELD",
        help=f"read TAG as FIELD ({', '.join(FIELDS)} or grad_norm:LAYER)",
    )
    p.add_argument("--name", help="the run's name in the history")
    p.add_argument("--data", type=Path, default=default_data_dir(), help="run history folder")
    p.add_argument(
        "--store",
        default=None,
        metavar="postgresql://USER@HOST:PORT/DB",
        help="store the run in this PostgreSQL database (the servers' --store), not under --data",
    )
    args = p.parse_args(argv)
    overrides = {}
    for item in args.map:
        tag, sep, field = item.rpartition("=")
        if not sep or not (field in FIELDS or field.startswith("grad_norm:")):
            p.error(f"--map {item!r}: expected TAG=FIELD with FIELD one of {', '.join(FIELDS)}")
        overrides[tag] = field
    if not args.path.exists():
        p.error(f"{args.path} does not exist")
    if args.store and (why := store_url_problem(args.store)):
        p.error(why)
    try:
        run_id = import_run(args.path, args.data, args.name, overrides, args.store)
    except StoreError as exc:
        print(f"backbeat import: {exc}", file=sys.stderr)
        return 1
    where = redacted(args.store) if args.store else args.data
    print(
        f"backbeat: imported {args.path} as run {run_id} into {where} (replay it from the history)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
