"""What an outside training script may send: a run's description and batches of steps.

Limits are stated here once; the routes, the docs and the client all follow them.
"""

from typing import Annotated, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.engine.config import JsonFloat, JsonInt
from app.engine.steps import StepBlock

MAX_BATCH_STEPS = 1000  # steps in one batch
MAX_LAYERS = 64  # layers (echoes) an outside run may report
MAX_EVALS = 100  # evaluations in one batch
MAX_EXTRA = 32  # names of extra scalars in one batch
MAX_NAME = 100  # characters in a run or layer name
MAX_PARAMS = 50  # entries in a run's free-form config
MAX_STEP = 2**53  # steps are exact in a JSON number below this
INGEST_MESSAGE_BYTES = 1 << 20  # largest websocket ingest message (1 MiB)
INGEST_RATE = 50.0  # batches a second per connection (bursts of twice that)
IDLE_TIMEOUT = 30.0  # s without a batch or a ping before an outside run is interrupted
RECONNECT_GRACE = 10.0  # s a script whose ingest socket closed has to reconnect
MAX_OUTSIDE_RUNS = 8  # outside runs live at once (they cost the server no training time)

Scalar = JsonFloat | None  # null stands for NaN or Infinity, which JSON cannot carry


def bounded_int(low: int, high: int):
    """A JSON integer in [low, high] (3.0 counts as 3), its bounds stated in the schema.

    pydantic words a bound after JsonInt's BeforeValidator as `ge`/`le`, so the schema is
    given as JSON Schema says it.
    """
    schema = {"type": "integer", "minimum": low, "maximum": high}
    return Annotated[JsonInt, Field(ge=low, le=high), WithJsonSchema(schema)]


Name = Annotated[str, Field(max_length=MAX_NAME)]
ParamValue = StrictInt | float | bool | Name | None
MAX_UNITS = 1_000_000  # units an outside layer boundary may report


class OutsideRunSpec(BaseModel):
    """Creating an outside run: who it is and which layers will echo."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["external"] = "external"
    name: Name | None = None
    layers: list[Annotated[str, Field(min_length=1, max_length=MAX_NAME)]] = Field(
        default_factory=list,
        max_length=MAX_LAYERS,
        description="layer names in forward order, one echo each",
    )
    sizes: list[bounded_int(1, MAX_UNITS)] | None = Field(
        None,
        max_length=MAX_LAYERS + 1,
        description="units at each layer boundary, for the diagram: exactly one entry more "
        "than `layers` (a 422 of type `value_error` otherwise)",
    )
    config: dict[Name, ParamValue] = Field(default_factory=dict, max_length=MAX_PARAMS)
    client_key: str | None = Field(
        None,
        min_length=8,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="made up once by the client: a create retried with the same key (its answer "
        "lost to a timeout) gets the same live run back, not a second one",
    )

    @model_validator(mode="after")
    def _consistent(self):
        if self.sizes is not None and len(self.sizes) != len(self.layers) + 1:
            raise ValueError("sizes needs one entry more than layers")
        return self


class OutsideEval(BaseModel):
    """A test-set evaluation: it feeds the chime, plateau and overfit detectors."""

    model_config = ConfigDict(extra="forbid")

    step: JsonInt = Field(ge=0, le=MAX_STEP)
    train_loss: Scalar = None
    test_loss: Scalar = None
    train_accuracy: Scalar = Field(None, ge=0.0, le=1.0)
    test_accuracy: Scalar = Field(None, ge=0.0, le=1.0)
    test_entropy: Scalar = Field(None, ge=0.0, le=1.0)


class OutsideExtra(BaseModel):
    """Scalars beyond loss, accuracy and entropy (a learning rate, a metric of one's own)."""

    model_config = ConfigDict(extra="forbid")

    step: list[JsonInt] = Field(max_length=MAX_BATCH_STEPS)
    values: dict[str, list[Scalar]] = Field(max_length=MAX_EXTRA)

    @model_validator(mode="after")
    def _aligned(self):
        for name, values in self.values.items():
            if not 1 <= len(name) <= MAX_NAME:
                raise ValueError(f"extra names need 1 to {MAX_NAME} characters")
            if len(values) != len(self.step):
                raise ValueError(
                    f"extra {name} has {len(values)} values for {len(self.step)} steps"
                )
        if any(not 0 <= s <= MAX_STEP for s in self.step):
            raise ValueError(f"steps must lie in 0..{MAX_STEP}")
        if any(b < a for a, b in zip(self.step, self.step[1:], strict=False)):
            raise ValueError("extra steps must not decrease")
        return self


LayerRows = list[list[Scalar] | None]  # a null row: not measured at that step


COLUMNS = ("t", "epoch", "loss", "accuracy", "entropy")  # one value a step
LAYER_COLUMNS = ("grad_norm", "update_ratio", "act_rms")  # one row a step, one value a layer
# what a 422 entry's `type` is for a rule between fields, which no JSON Schema states
BATCH_RULES = ("column_length", "step_order", "row_width")


class BatchError(ValueError):
    """A batch refused for its shape: each problem with where it is, what and its figures.

    `problems` are pydantic's line errors (`loc` inside the batch, `type`, `msg`, `ctx`), so
    HTTP answers them as any other 422 and the websocket sends the first one's sentence.
    """

    def __init__(self, problems: list[dict]) -> None:
        self.problems = problems
        super().__init__("; ".join(problem["msg"] for problem in problems))


def _problem(loc: tuple, kind: str, template: str, **ctx) -> dict:
    message = template.format(**ctx)
    return {"loc": loc, "type": kind, "msg": message, "input": ctx.get("length"), "ctx": ctx}


def _refuse(problems: list[dict]) -> None:
    """Raise the problems as one ValidationError whose entries name the columns."""
    raise ValidationError.from_exception_data(
        "StepBatch",
        [
            InitErrorDetails(
                type=PydanticCustomError(p["type"], p["msg"], p["ctx"]),
                loc=p["loc"],
                input=p["input"],
            )
            for p in problems
        ],
    )


def column_lengths(batch: "StepBatch") -> list[dict]:
    """A problem for every column not as long as `step`; each names all the given lengths."""
    n = len(batch.step)
    given = {"step": n}
    for name in (*COLUMNS, *LAYER_COLUMNS):
        values = getattr(batch, name)
        if values is not None:  # loss is always given (it defaults to no values)
            given[name] = len(values)
    message = (
        "{column} has {length} {unit} for {steps} steps; every column needs one a step "
        "(lengths: {lengths})"
    )
    problems = []
    for name, length in given.items():
        if name != "step" and length != n:
            unit = "rows" if name in LAYER_COLUMNS else "values"
            lengths = ", ".join(f"{k} {v}" for k, v in given.items())
            ctx = dict(column=name, length=length, unit=unit, steps=n, lengths=lengths)
            problems.append(_problem((name,), "column_length", message, **ctx))
    return problems


class StepBatch(BaseModel):
    """Columnar steps of an outside run.

    Every column given (t, epoch, loss, accuracy, entropy, grad_norm, update_ratio, act_rms)
    holds one entry a step, as many as `step` has; `loss` counts as given (it defaults to no
    entries), so a batch with steps sends its losses, null where unknown. A batch whose
    columns differ in length is refused whole, with a 422 entry for each such column naming
    it and every length (type `column_length`). Steps increase within a batch (type
    `step_order`). A per-layer row holds one value a layer of the run (type `row_width`).
    """

    model_config = ConfigDict(extra="forbid")

    step: list[bounded_int(0, MAX_STEP)] = Field(default_factory=list, max_length=MAX_BATCH_STEPS)
    t: list[JsonFloat] | None = Field(None, max_length=MAX_BATCH_STEPS)
    epoch: list[JsonInt] | None = Field(None, max_length=MAX_BATCH_STEPS)
    loss: list[Scalar] = Field(default_factory=list, max_length=MAX_BATCH_STEPS)
    accuracy: list[Scalar] | None = Field(None, max_length=MAX_BATCH_STEPS)
    entropy: list[Scalar] | None = Field(None, max_length=MAX_BATCH_STEPS)
    grad_norm: LayerRows | None = Field(None, max_length=MAX_BATCH_STEPS)
    update_ratio: LayerRows | None = Field(None, max_length=MAX_BATCH_STEPS)
    act_rms: LayerRows | None = Field(None, max_length=MAX_BATCH_STEPS)
    evals: list[OutsideEval] = Field(default_factory=list, max_length=MAX_EVALS)
    extra: OutsideExtra | None = None
    end: Literal["finished", "failed"] | None = Field(
        None, description="the script is done: the run ends after this batch"
    )

    @model_validator(mode="after")
    def _aligned(self):
        problems = column_lengths(self)
        if any(b <= a for a, b in zip(self.step, self.step[1:], strict=False)):
            problems.append(_problem(("step",), "step_order", "steps must increase within a batch"))
        if problems:
            _refuse(problems)
        return self


def _floats(values: list[Scalar] | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    return np.array(values, dtype=np.float64)  # numpy reads None as NaN


def _layer_rows(
    name: str, rows: LayerRows | None, width: int, fresh: list[bool], held: dict[str, np.ndarray]
) -> np.ndarray:
    """Per-layer values; a null row (not measured) holds the last measured one before it.

    `held` keeps each column's last measured row across batches (NaN before the first):
    a NaN would sound and store as an explosion, which an unmeasured step is not. Rows
    that are not `fresh` (a batch resent after a reconnect) do not change it.
    """
    n = len(fresh)
    if rows is None:
        return np.full((n, width), np.nan)
    wrong = [i for i, row in enumerate(rows) if row is not None and len(row) != width]
    if wrong:
        template = (
            "each {column} row needs {width} values, one per layer; "
            "row {row} has {length} ({count} rows wrong)"
        )
        first = wrong[0]
        ctx = dict(column=name, width=width, row=first, length=len(rows[first]), count=len(wrong))
        raise BatchError([_problem((name, first), "row_width", template, **ctx)])
    last = held.get(name)
    if last is None:
        last = np.full(width, np.nan)
    given = [i for i, row in enumerate(rows) if row is not None]
    table = np.empty((len(given) + 1, width))  # the held row, then each given row
    table[0] = last
    if given:
        table[1:] = np.array([rows[i] for i in given], dtype=np.float64).reshape(len(given), width)
    # each step shows the latest fresh given row at or before it (a resent one, its own)
    holder = np.zeros(n, dtype=np.intp)
    news = [(i, k) for k, i in enumerate(given, 1) if fresh[i]]
    if news:
        at, which = zip(*news, strict=True)
        holder[list(at)] = which
    holder = np.maximum.accumulate(holder) if n else holder
    out = table[holder]
    for k, i in enumerate(given, 1):
        if not fresh[i]:
            out[i] = table[k]
    held[name] = table[holder[-1]] if n else last
    return out


def measured_steps(batch: StepBatch) -> list[int] | None:
    """Steps whose echo rows were given, when some were not (None when all or none were)."""
    rows = batch.grad_norm
    if rows is None or all(row is not None for row in rows):
        return None
    return [s for s, row in zip(batch.step, rows, strict=True) if row is not None]


def to_block(
    batch: StepBatch,
    width: int,
    now: float,
    held: dict[str, np.ndarray] | None = None,
    after: int = -1,
) -> StepBlock:
    """A validated batch as a step block for the run's `width` layers (NaN where not logged).

    `held` is the run's last measured rows, updated by steps above `after` (see `_layer_rows`).
    """
    n = len(batch.step)
    held = {} if held is None else held
    fresh = [s > after for s in batch.step]
    block = {
        "step": np.array(batch.step, dtype=np.int64),
        "t": np.array(batch.t, dtype=np.float64) if batch.t is not None else np.full(n, now),
        "epoch": np.array(batch.epoch or [0] * n, dtype=np.int64),
        "loss": _floats(batch.loss, n),
        "accuracy": _floats(batch.accuracy, n),
        "entropy": _floats(batch.entropy, n),
        "crescendo": np.zeros(n),
    }
    for name in ("act_rms", "grad_norm", "update_ratio"):
        block[name] = _layer_rows(name, getattr(batch, name), width, fresh, held)
    return block
