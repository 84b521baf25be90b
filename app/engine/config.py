"""A run's configuration: validated, with Playground-like ranges and one clear error per field."""

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from app.engine.datasets import DATASETS, FEATURES, Dataset, DatasetSpec, make_dataset
from app.engine.tables import MAX_CLASSES, MAX_COLUMNS, NAME_PATTERN, Table, table_dataset

MAX_PARAMETERS = 200_000  # keeps one step well under a millisecond on a laptop core
MAX_HIDDEN_LAYERS = 8
MAX_UNITS = 256
DIGITS_INPUTS = 64
# The first run a newcomer hears (README, "The first run"): the spiral with sine features
# and Adam chimes at step 575, 36 s at 16 steps/s, one audible beat a step.
DEFAULT_FEATURES = ("x1", "x2", "sin(x1)", "sin(x2)")
DEFAULT_TEMPO = 16.0  # steps/s: each step is its own beat (the page fuses beats above 16/s)
# Settings a running run can change between two steps (POST .../control {"action": "set"}).
LIVE_FIELDS = (
    "learning_rate",
    "optimizer",
    "regularization",
    "regularization_rate",
    "batch_size",
    "max_steps",
    "stop_at_convergence",
)
# Settings that shape the data or the network: changing one needs a new run.
STRUCTURAL_FIELDS = (
    "dataset",
    "n_samples",
    "noise",
    "train_ratio",
    "features",
    "hidden",
    "activation",
    "seed",
    "start_paused",
    "table",
)


PARAMETER_CAP = (
    f"at most {MAX_PARAMETERS:,} parameters in all (weights and biases, inputs to output);"
    " the inputs are the chosen features (64 pixels for digits)"
)


def _integral(value):
    """JSON has one number type: 3.0 is the integer 3, as JSON Schema says; "3" is not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# What the OpenAPI document promises: no strings or booleans taken for numbers (pydantic's
# lax mode would take "3" and true), integral floats taken as integers, ints as numbers.
JsonInt = Annotated[StrictInt, BeforeValidator(_integral)]
JsonFloat = StrictFloat


def known_datasets() -> list[str]:
    """Names a run may train on; the config's check and the OpenAPI enum both read this."""
    return list(DATASETS)


def _dataset_enum(schema: dict) -> None:
    """The document lists the datasets known when it is built (the app rebuilds it on change)."""
    schema["enum"] = known_datasets()


class TableRef(BaseModel):
    """What a run on an uploaded or drawn set knows of it without its rows (kept by hash)."""

    model_config = ConfigDict(extra="forbid")

    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the stored set")
    kind: Literal["csv", "drawn"]
    task: Literal["classification", "regression"]
    n_classes: JsonInt = Field(ge=0, le=MAX_CLASSES)
    inputs: list[str] = Field(min_length=1, max_length=MAX_COLUMNS)
    rows: JsonInt = Field(ge=0)

    @property
    def is_2d(self) -> bool:
        return len(self.inputs) == 2


class RunConfig(BaseModel):
    """Everything that determines a run; the same config and seed replay bit-identically."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"description": f"A run's settings; {PARAMETER_CAP}."}
    )

    dataset: str = Field(
        "spiral",
        description="a built-in dataset (circle, xor, gauss, spiral, moons, plane, multigauss,"
        " digits) or an uploaded set's name, see GET /api/datasets",
        max_length=64,
        json_schema_extra=_dataset_enum,
    )
    table: TableRef | None = Field(
        None,
        description="set by the server for an uploaded or drawn dataset; a value sent is replaced",
    )
    n_samples: JsonInt = Field(
        500, ge=10, le=5000, description="points generated (digits: all 1,797)"
    )
    noise: JsonFloat = Field(0.0, ge=0.0, le=0.5)
    train_ratio: JsonFloat = Field(0.5, ge=0.1, le=0.9)
    features: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FEATURES),
        min_length=1,
        max_length=len(FEATURES),
        description="input features, each at most once (ignored for digits)",
        json_schema_extra={"items": {"enum": list(FEATURES)}, "uniqueItems": True},
    )
    hidden: list[JsonInt] = Field(
        default_factory=lambda: [8, 8],
        max_length=MAX_HIDDEN_LAYERS,
        description=f"units per hidden layer, input side first; {PARAMETER_CAP}",
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": MAX_UNITS}},
    )
    activation: Literal["relu", "tanh", "sigmoid", "linear"] = "tanh"
    optimizer: Literal["sgd", "momentum", "adam"] = "adam"
    learning_rate: JsonFloat = Field(0.03, ge=1e-5, le=10.0)
    batch_size: JsonInt = Field(10, ge=1, le=512)
    regularization: Literal["none", "l1", "l2"] = "none"
    regularization_rate: JsonFloat = Field(0.0, ge=0.0, le=10.0)
    seed: JsonInt = Field(0, ge=0, le=2**31 - 1)
    max_steps: JsonInt = Field(20_000, ge=1, le=10_000_000)
    steps_per_second: JsonFloat | None = Field(
        DEFAULT_TEMPO, ge=0.1, le=10_000.0, description="tempo; null runs as fast as it goes"
    )
    start_paused: StrictBool = False
    stop_at_convergence: StrictBool = Field(
        True, description="end the run as `converged` on its chime; false plays on"
    )

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        if name not in DATASETS and not re.match(NAME_PATTERN, name):
            raise ValueError(unknown_dataset(name))
        return name

    @field_validator("features")
    @classmethod
    def _known_features(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in FEATURES]
        if unknown:
            raise ValueError(f"unknown feature {unknown[0]!r}; choose from {', '.join(FEATURES)}")
        if len(set(names)) != len(names):
            raise ValueError("each feature may be chosen once")
        return names

    @field_validator("table")
    @classmethod
    def _stored_only(cls, table: TableRef | None, info: ValidationInfo) -> TableRef | None:
        """A built-in set is regenerated from the config; only uploaded sets are stored."""
        return None if info.data.get("dataset") in DATASETS else table

    @field_validator("hidden")
    @classmethod
    def _sized_layers(cls, hidden: list[int], info: ValidationInfo) -> list[int]:
        for units in hidden:
            if not 1 <= units <= MAX_UNITS:
                raise ValueError(f"each hidden layer needs 1 to {MAX_UNITS} units, got {units}")
        dataset, features = info.data.get("dataset"), info.data.get("features")
        table = info.data.get("table")
        if dataset is not None and features is not None and (dataset in DATASETS or table):
            spec = dataset_spec(dataset, table)
            n = count_parameters(layer_sizes(spec, features, hidden, table))
            if n > MAX_PARAMETERS:
                raise ValueError(f"{n:,} parameters exceed the limit of {MAX_PARAMETERS:,}")
        return hidden

    @property
    def spec(self) -> DatasetSpec:
        return dataset_spec(self.dataset, self.table)

    @property
    def layers(self) -> list[int]:
        return layer_sizes(self.spec, self.features, self.hidden, self.table)

    def make_data(self, table: Table | None = None) -> Dataset:
        """The run's data, regenerated exactly from the config (seeded) and its stored table."""
        if self.table is not None:
            if table is None or table.hash != self.table.hash:
                raise ValueError(f"a run on {self.dataset!r} needs its table {self.table.hash}")
            return table_dataset(
                self.dataset,
                table,
                train_ratio=self.train_ratio,
                seed=self.seed,
                features=self.features,
            )
        if self.dataset not in DATASETS:
            raise ValueError(f"no dataset {self.dataset!r}: it was never uploaded")
        return make_dataset(
            self.dataset,
            n_samples=self.n_samples,
            noise=self.noise,
            train_ratio=self.train_ratio,
            seed=self.seed,
            features=self.features,
        )

    def describe(self) -> dict:
        """The run's shape as every hello and run listing reports it."""
        spec = self.spec
        return {
            "config": self.model_dump(),
            "layers": self.layers,
            "features": self.input_features,
            "task": spec.task,
            "n_classes": spec.n_classes,
        }

    @property
    def input_features(self) -> list[str]:
        """The features the network sees (all pixels for digits)."""
        if self.spec.is_2d:
            return list(self.features)
        if self.table is not None:
            return list(self.table.inputs)
        return [f"px{i}" for i in range(DIGITS_INPUTS)]


# How the page names each choice; the values themselves are RunConfig's (a test checks both agree).
CHOICE_LABELS: dict[str, dict[str, str]] = {
    "activation": {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "linear": "Linear"},
    "optimizer": {"sgd": "SGD", "momentum": "Momentum", "adam": "Adam"},
    "regularization": {"none": "None", "l1": "L1", "l2": "L2"},
}


def choices(name: str) -> list[dict]:
    """A choice field's options in RunConfig's order, each with the label the page shows."""
    labels, values = CHOICE_LABELS[name], get_args(RunConfig.model_fields[name].annotation)
    return [{"value": v, "label": labels[v]} for v in values]


def field_bounds(name: str) -> dict:
    """A numeric field's default and inclusive range (None where it is unbounded)."""
    field = RunConfig.model_fields[name]
    bounds = {k: getattr(m, k) for m in field.metadata for k in ("ge", "le") if hasattr(m, k)}
    return {"default": field.default, "min": bounds.get("ge"), "max": bounds.get("le")}


NUMBER_FIELDS = (
    "n_samples",
    "noise",
    "train_ratio",
    "learning_rate",
    "batch_size",
    "regularization_rate",
    "seed",
    "max_steps",
)


def form_schema() -> dict:
    """What the page's run form is built from: defaults, choices and limits, all RunConfig's."""
    return {
        "defaults": RunConfig().model_dump(),
        "choices": {name: choices(name) for name in CHOICE_LABELS},
        "limits": {name: field_bounds(name) for name in NUMBER_FIELDS},
        "features": list(FEATURES),
        "digits_inputs": DIGITS_INPUTS,
    }


def count_parameters(sizes: list[int]) -> int:
    return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:], strict=True))


def _some_change(changes: BaseModel) -> BaseModel:
    if not changes.model_fields_set:
        raise ValueError("name at least one setting to change")
    return changes


def _changes_model() -> type[BaseModel]:
    """Live knobs typed and bounded exactly as in RunConfig; structural names are accepted
    here so the route can answer 409 (a new run is needed) rather than 422."""
    fields: dict = {}
    for name in LIVE_FIELDS:
        f = RunConfig.model_fields[name]
        kind = Annotated[f.annotation, *f.metadata] if f.metadata else f.annotation
        fields[name] = (kind, Field(None, description=f.description))  # omitted, never null
    for name in STRUCTURAL_FIELDS:
        fields[name] = (Any, Field(None, description="needs a new run: answered with 409"))
    return create_model(
        "LiveChanges",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1}),
        __validators__={"_not_empty": model_validator(mode="after")(_some_change)},
        __doc__="Settings to change on a running run; omitted ones stay as they are.",
        **fields,
    )


LiveChanges = _changes_model()


def unknown_dataset(name: str) -> str:
    return f"unknown dataset {name!r}; choose from {', '.join(DATASETS)} or an uploaded set"


def dataset_spec(dataset: str, table: TableRef | None) -> DatasetSpec:
    """A built-in set's spec, or one made from an uploaded set's ref."""
    if table is None:
        return DATASETS[dataset]
    return DatasetSpec(dataset, table.task, table.n_classes, table.is_2d, f"{table.rows:,} rows")


def layer_sizes(
    spec: DatasetSpec, features: list[str], hidden: list[int], table: TableRef | None = None
) -> list[int]:
    if spec.is_2d:
        n_in = len(features)
    else:
        n_in = len(table.inputs) if table is not None else DIGITS_INPUTS
    n_out = spec.n_classes if spec.n_classes > 2 else 1
    return [n_in, *hidden, n_out]
