"""A run's configuration: validated, with Playground-like ranges and one clear error per field."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationInfo, field_validator

from app.datasets import DATASETS, FEATURES, Dataset, make_dataset

MAX_PARAMETERS = 200_000  # keeps one step well under a millisecond on a laptop core
MAX_HIDDEN_LAYERS = 8
MAX_UNITS = 256
DIGITS_INPUTS = 64


class RunConfig(BaseModel):
    """Everything that determines a run; the same config and seed replay bit-identically."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field("spiral", description="dataset name, see GET /api/datasets")
    n_samples: int = Field(500, ge=10, le=5000, description="points generated (digits: all 1,797)")
    noise: float = Field(0.0, ge=0.0, le=0.5)
    train_ratio: float = Field(0.5, ge=0.1, le=0.9)
    features: list[str] = Field(default_factory=lambda: ["x1", "x2"], min_length=1)
    hidden: list[StrictInt] = Field(default_factory=lambda: [8, 8], max_length=MAX_HIDDEN_LAYERS)
    activation: Literal["relu", "tanh", "sigmoid", "linear"] = "tanh"
    optimizer: Literal["sgd", "momentum", "adam"] = "sgd"
    learning_rate: float = Field(0.03, ge=1e-5, le=10.0)
    batch_size: int = Field(10, ge=1, le=512)
    regularization: Literal["none", "l1", "l2"] = "none"
    regularization_rate: float = Field(0.0, ge=0.0, le=10.0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    max_steps: int = Field(20_000, ge=1, le=10_000_000)
    steps_per_second: float | None = Field(
        8.0, ge=0.1, le=10_000.0, description="tempo; null runs as fast as it goes"
    )
    start_paused: bool = False

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
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

    @field_validator("hidden")
    @classmethod
    def _sized_layers(cls, hidden: list[int], info: ValidationInfo) -> list[int]:
        for units in hidden:
            if not 1 <= units <= MAX_UNITS:
                raise ValueError(f"each hidden layer needs 1 to {MAX_UNITS} units, got {units}")
        dataset, features = info.data.get("dataset"), info.data.get("features")
        if dataset is not None and features is not None:
            n = count_parameters(layer_sizes(dataset, features, hidden))
            if n > MAX_PARAMETERS:
                raise ValueError(f"{n:,} parameters exceed the limit of {MAX_PARAMETERS:,}")
        return hidden

    @property
    def layers(self) -> list[int]:
        return layer_sizes(self.dataset, self.features, self.hidden)

    def make_data(self) -> Dataset:
        """The run's data, regenerated exactly from the config (it is seeded)."""
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
        spec = DATASETS[self.dataset]
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
        if DATASETS[self.dataset].is_2d:
            return list(self.features)
        return [f"px{i}" for i in range(DIGITS_INPUTS)]


def layer_sizes(dataset: str, features: list[str], hidden: list[int]) -> list[int]:
    spec = DATASETS[dataset]
    n_in = len(features) if spec.is_2d else DIGITS_INPUTS
    n_out = spec.n_classes if spec.n_classes > 2 else 1
    return [n_in, *hidden, n_out]


def count_parameters(sizes: list[int]) -> int:
    return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:], strict=True))
