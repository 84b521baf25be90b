"""What a run's downloads say: metrics CSV with evaluations and events, a self-describing model."""

import csv
import io

import numpy as np

from app.engine.steps import LAYER_COLUMNS, SCALAR_COLUMNS
from app.live.wire import column

EVAL_COLUMNS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "test_entropy")
# the moments that mattered, named in the `event` column (several at one step: joined by ";")
EVENT_TYPES = ("chime", "alarm", "overfit", "plateau", "plateau_end", "change")
LOSS_NAMES = {"bce": "cross-entropy", "softmax_ce": "cross-entropy", "mse": "squared error"}
MODEL_FORMAT = "backbeat-model/1"
# an outside run's own scalars, and which of its steps had their echoes measured
OUTSIDE_EVENTS = ("extra", "measured")


def outside_columns(events: list[dict], start: int = 0, stop: int | None = None) -> dict:
    """An outside run's `extra` scalars as columns (`step` and one per name, null where a step
    did not log it) and its `measured` steps, within [start, stop); {} when it has neither."""
    inside = lambda s: start <= s and (stop is None or s < stop)  # noqa: E731
    extras: dict[int, dict] = {}
    measured: list[int] = []
    for ev in events:
        if ev.get("type") == "extra":
            for i, step in enumerate(ev["steps"]):
                if inside(step):
                    row = extras.setdefault(step, {})
                    for name, values in ev["values"].items():
                        if values[i] is not None or name not in row:  # null: not logged here
                            row[name] = values[i]
        elif ev.get("type") == "measured":
            measured += [s for s in ev["steps"] if inside(s)]
    out: dict = {}
    if extras:
        names = sorted({name for row in extras.values() for name in row})
        steps = sorted(extras)
        out["extra"] = {"step": steps, **{n: [extras[s].get(n) for s in steps] for n in names}}
    if measured:
        out["measured"] = sorted(set(measured))
    return out


def _mark(ev: dict) -> str:
    """An event in words: a knob change names what it set ("change learning_rate=1.0")."""
    detail = " ".join(f"{k}={v}" for k, v in ev.get("changes", {}).items())
    return f"{ev['type']} {detail}".strip()


def metrics_csv(block: dict, n_layers: int, events: list[dict]) -> str:
    """Every step's metrics, plus each evaluation's numbers and events at their step.

    A step with no row of its own (step 0's first evaluation, or a thinned `every`) gets a row
    whose per-step cells are empty. An outside run adds its own scalars as `extra_<name>`
    columns and, when its echoes were measured on some steps only, a `measured` column
    (1 measured, 0 held from the previous measurement).
    """
    header = list(SCALAR_COLUMNS) + [f"{n}_{k}" for n in LAYER_COLUMNS for k in range(n_layers)]
    cols = [column(name, block[name]) for name in SCALAR_COLUMNS]
    cols += [column(name, block[name][:, k]) for name in LAYER_COLUMNS for k in range(n_layers)]
    texts = [c.astype(str) if c.dtype == np.float32 else c.tolist() for c in cols]
    rows = {int(s): list(r) for s, r in zip(block["step"], zip(*texts, strict=True), strict=True)}
    evals: dict[int, list] = {}
    marks: dict[int, list[str]] = {}
    for ev in events:
        step = int(ev.get("step") or 0)
        if ev.get("type") == "eval":
            evals[step] = ["" if ev.get(k) is None else repr(float(ev[k])) for k in EVAL_COLUMNS]
        elif ev.get("type") in EVENT_TYPES:
            marks.setdefault(step, []).append(_mark(ev))
    text = io.StringIO()
    writer = csv.writer(text)
    outside = outside_columns(events)
    extra = outside.get("extra", {"step": []})
    names = [n for n in extra if n != "step"]
    extras = {s: [extra[n][i] for n in names] for i, s in enumerate(extra["step"])}
    measured = set(outside.get("measured", ()))
    tail = [f"extra_{n}" for n in names] + (["measured"] if measured else [])
    writer.writerow([*header, *EVAL_COLUMNS, "event", *tail])
    blank = [""] * len(header)
    for step in sorted(rows.keys() | evals.keys() | marks.keys() | extras.keys()):
        own = rows.get(step) or [step, *blank[1:]]
        line = [*own, *evals.get(step, [""] * len(EVAL_COLUMNS)), ";".join(marks.get(step, []))]
        if names:
            line += [
                "" if v is None else repr(float(v)) for v in extras.get(step, [None] * len(names))
            ]
        if measured:
            line.append(("1" if step in measured else "0") if step in rows else "")
        writer.writerow(line)
    return text.getvalue()


def describe_model(model: dict, description: dict, run_id: str) -> dict:
    """The weights with what they are: config, dataset, features, layer sizes, activations, loss.

    `description` is RunConfig.describe() of the run's config.
    """
    layers = model.get("layers", [])
    activations = [layer.get("activation") for layer in layers]
    loss = model.get("loss") or ("mse" if activations[-1:] == ["linear"] else "bce")
    return {
        "format": MODEL_FORMAT,
        "run_id": run_id,
        "dataset": description["config"]["dataset"],
        "task": description["task"],
        "features": description["features"],
        "layer_sizes": description["layers"],
        "activations": activations,
        "loss": LOSS_NAMES.get(loss, loss),
        "config": description["config"],
        **{k: v for k, v in model.items() if k != "loss"},
    }
