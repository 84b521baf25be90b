"""What the HTTP routes answer, as models, so the OpenAPI document shows every success body.

Models of records that grow (a run's description, its summary) allow extra keys: a field one
issue adds must not be stripped by another's model. Configs are plain objects here, not
RunConfig, because a stored run's config must still list after its dataset is gone.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Number = float | None  # non-finite numbers are sent as null

RUN_STATES = ("starting", "running", "paused", "finished", "stopped", "diverged", "failed",
              "interrupted")  # fmt: skip


class Open(BaseModel):
    """A record that may carry keys beyond the documented ones."""

    model_config = ConfigDict(extra="allow")


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    connections: int = Field(ge=0, description="open websockets")


class Session(BaseModel):
    role: Literal["presenter", "viewer"]
    shared: bool = Field(description="true when the server was started with --share")


class ParamRange(BaseModel):
    default: float | int | None
    min: float | int | None
    max: float | int | None


class DatasetInfo(Open):
    name: str
    task: Literal["classification", "regression"]
    n_classes: int = Field(ge=0, description="0 for regression")
    description: str
    features: list[str] = Field(description="input features a run may pick (2-D sets only)")
    default_features: list[str]
    n_inputs: int = Field(ge=1)
    params: dict[str, ParamRange] = Field(description="n_samples, noise and train_ratio")


class RunCreated(BaseModel):
    id: str
    state: str = Field(description="`starting`, or `paused` for a run created paused")


class RunListing(Open):
    id: str
    state: str = Field(description=f"one of {', '.join(RUN_STATES)}")
    step: int
    created: float = Field(description="Unix time, s")
    updated: float | None = Field(None, description="Unix time, s")
    config: dict[str, Any] | None = Field(description="the run config it was created with")
    summary: dict[str, Any] | None = Field(
        description="final or latest losses and accuracies; `reason` when it ended early"
    )


class RunDetail(RunListing):
    epoch: int | None = Field(None, description="null for a stored run")
    layers: list[int] | None = Field(None, description="units per layer, inputs first")
    latest: dict[str, Any] | None = Field(None, description="the newest step's metrics")


class ControlAnswer(Open):
    id: str
    state: str
    step: int
    steps_per_second: Number = Field(description="null: unpaced")
    metrics: dict[str, Any] | None = Field(None, description="only for `step`: that step's")
    config: dict[str, Any] | None = Field(None, description="only for `set`: the new config")
    notes: dict[str, Any] | None = Field(None, description="only for `set`: what it implies")


class Layer(Open):
    weights: list[list[Number]] = Field(description="weights[i][j] connects input i to unit j")
    biases: list[Number]
    activation: str


class Model(Open):
    step: int
    layers: list[Layer]


class Split(Open):
    x: list[list[Number]] = Field(description="what the network sees, one row a sample")
    y: list[Number]
    points: list[list[Number]] | None = Field(None, description="raw 2-D coordinates")


class RunData(Open):
    features: list[str]
    task: str
    n_classes: int
    extent: list[float] | None = Field(description="[xmin, xmax, ymin, ymax]; null for digits")
    train: Split
    test: Split


class Metrics(Open):
    id: str
    layers: list[int] | None
    beats: dict[str, list[Any]] = Field(description="per-step columns, as in a frame")
    echoes: dict[str, list[Any]] = Field(description="per-layer columns, as in a frame")
    crescendo: list[Number]


CSV = {"text/csv": {"schema": {"type": "string", "description": "one row a step"}}}
