"""Seeded datasets by name: TensorFlow Playground's 2-D sets (dataset.ts) plus 8x8 digits."""

import gzip
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

EXTENT = (-6.0, 6.0, -6.0, 6.0)  # (xmin, xmax, ymin, ymax) shared by every 2-D set
MAX_NOISE = 0.5  # Playground's slider goes 0..50 %
MOON_RADIUS = 10 / 3  # so the pair of moons spans x in [-5, 5], like the circle
BUMPS = ((-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1))
DIGITS_PATH = Path(__file__).parent / "data" / "digits.csv.gz"

FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "x1": lambda p: p[:, 0],
    "x2": lambda p: p[:, 1],
    "x1^2": lambda p: p[:, 0] ** 2,
    "x2^2": lambda p: p[:, 1] ** 2,
    "x1*x2": lambda p: p[:, 0] * p[:, 1],
    "sin(x1)": lambda p: np.sin(p[:, 0]),
    "sin(x2)": lambda p: np.sin(p[:, 1]),
}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    task: str  # "classification" | "regression"
    n_classes: int  # 0 for regression
    is_2d: bool
    description: str


# eq=False: field-wise == on arrays is ambiguous, so datasets compare by identity.
@dataclass(frozen=True, eq=False)
class Dataset:
    spec: DatasetSpec
    features: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    points_train: np.ndarray | None
    points_test: np.ndarray | None
    extent: tuple[float, float, float, float] | None
    target_range: tuple[float, float] | None


def _check(kind: str, name: str, valid: Sequence[str]) -> None:
    """Reject unknown names with the list a user can pick from."""
    if name not in valid:
        raise ValueError(f"unknown {kind} {name!r}; choose one of: {', '.join(valid)}")


def featurize(points: np.ndarray, features: Sequence[str]) -> np.ndarray:
    """Turn raw (n, 2) points into the network's input columns, one per named feature."""
    if not features:
        raise ValueError(f"pick at least one feature from: {', '.join(FEATURES)}")
    for name in features:
        _check("feature", name, FEATURES)
    points = np.asarray(points, dtype=np.float64)
    return np.column_stack([FEATURES[name](points) for name in features])


def grid_points(extent: tuple[float, float, float, float], size: int = 64) -> np.ndarray:
    """Heatmap sample points, row-major with row 0 at the top (ymax) as a canvas draws it."""
    xmin, xmax, ymin, ymax = extent
    gx, gy = np.meshgrid(np.linspace(xmin, xmax, size), np.linspace(ymax, ymin, size))
    return np.column_stack([gx.ravel(), gy.ravel()])


# Generators: (rng, n, noise) -> (points (n, 2), targets (n,)). Binary labels alternate 1, 0,
# so the classes differ in size by at most one. Where Playground keeps points in place and
# reads the label at a jittered position (circle, xor, plane, multigauss), so do we.


def _two_classes(n: int) -> np.ndarray:
    return 1 - np.arange(n, dtype=np.int64) % 2


def _polar(radius: np.ndarray, angle: np.ndarray) -> np.ndarray:
    return radius[:, None] * np.column_stack([np.sin(angle), np.cos(angle)])


def _circle(rng, n, noise):
    """Disc of radius 2.5 (label 1) inside a ring 3.5..5 (label 0)."""
    labels = _two_classes(n)
    u = rng.uniform(0, 1, n)
    points = _polar(np.where(labels == 1, 2.5 * u, 3.5 + 1.5 * u), rng.uniform(0, 2 * np.pi, n))
    read = points + rng.uniform(-5, 5, (n, 2)) * noise
    return points, (np.hypot(read[:, 0], read[:, 1]) < 2.5).astype(np.int64)


def _xor(rng, n, noise):
    """Label 1 where x*y >= 0; clean points sit at least 0.3 off the axes."""
    points = rng.uniform(-5, 5, (n, 2))
    points += np.where(points > 0, 0.3, -0.3)
    read = points + rng.uniform(-5, 5, (n, 2)) * noise
    return points, (read[:, 0] * read[:, 1] >= 0).astype(np.int64)


def _gauss(rng, n, noise):
    """Blobs at (2, 2) (label 1) and (-2, -2); variance grows from 0.5 to 4 with noise."""
    labels = _two_classes(n)
    std = np.sqrt(0.5 + 3.5 * noise / MAX_NOISE)
    centres = np.where(labels[:, None] == 1, 2.0, -2.0)
    return centres + rng.normal(0, std, (n, 2)), labels


def _spiral(rng, n, noise):
    """Two arms of 1.75 turns out to radius 5, label 0 rotated half a turn from label 1."""
    labels = _two_classes(n)
    along = (np.arange(n) // 2) / ((n + 1) // 2)
    angle = 1.75 * 2 * np.pi * along + np.pi * (1 - labels)
    return _polar(5 * along, angle) + rng.uniform(-1, 1, (n, 2)) * noise, labels


def _moons(rng, n, noise):
    """scikit-learn's make_moons (upper moon label 0), centred and scaled; noise std 2 * noise."""
    labels = 1 - _two_classes(n)
    theta = rng.uniform(0, np.pi, n)
    upper = np.column_stack([np.cos(theta), np.sin(theta)])
    lower = np.column_stack([1 - np.cos(theta), 0.5 - np.sin(theta)])
    unit = np.where(labels[:, None] == 0, upper, lower) - (0.5, 0.25)
    return MOON_RADIUS * unit + rng.normal(0, 2 * noise, (n, 2)), labels


def _plane(rng, n, noise):
    """Target (x1 + x2) / 12: exactly linear on the clean square, clipped to [-1, 1]."""
    points = rng.uniform(-6, 6, (n, 2))
    read = points + rng.uniform(-6, 6, (n, 2)) * noise
    return points, np.clip(read.sum(axis=1) / 12, -1, 1)


def _multigauss(rng, n, noise):
    """Target is the sum of six unit-height gaussian bumps (sigma 1) of alternating sign."""
    points = rng.uniform(-6, 6, (n, 2))
    read = points + rng.uniform(-6, 6, (n, 2)) * noise
    bumps = np.array(BUMPS, dtype=np.float64)
    d2 = ((read[:, None, :] - bumps[:, :2]) ** 2).sum(axis=2)
    return points, np.clip(np.exp(-d2 / 2) @ bumps[:, 2], -1, 1)


_GENERATORS = {
    "circle": _circle,
    "xor": _xor,
    "gauss": _gauss,
    "spiral": _spiral,
    "moons": _moons,
    "plane": _plane,
    "multigauss": _multigauss,
}

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("circle", "classification", 2, True, "A disc inside a ring."),
        DatasetSpec("xor", "classification", 2, True, "Opposite quadrants share a class."),
        DatasetSpec("gauss", "classification", 2, True, "Two gaussian blobs."),
        DatasetSpec("spiral", "classification", 2, True, "Two interleaved spirals."),
        DatasetSpec("moons", "classification", 2, True, "Two interleaved half-circles."),
        DatasetSpec("plane", "regression", 0, True, "A tilted plane: target (x1 + x2) / 12."),
        DatasetSpec("multigauss", "regression", 0, True, "Six gaussian bumps of either sign."),
        DatasetSpec("digits", "classification", 10, False, "8x8 handwritten digits (UCI)."),
    )
}


@lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Parse the shipped CSV once: 64 pixels in 0..16 then the label, per row."""
    with gzip.open(DIGITS_PATH, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :-1] / 16.0, table[:, -1]


def split(rng, n: int, train_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle indices and cut them, leaving at least one example on each side."""
    order = rng.permutation(n)
    n_train = min(max(round(n * train_ratio), 1), n - 1)
    return order[:n_train], order[n_train:]


def make_dataset(
    name: str,
    n_samples: int = 500,
    noise: float = 0.0,
    train_ratio: float = 0.5,
    seed: int = 0,
    features: Sequence[str] = ("x1", "x2"),
) -> Dataset:
    """Generate, shuffle and split a named dataset; equal arguments give bit-identical arrays."""
    _check("dataset", name, DATASETS)
    if not 0 <= noise <= MAX_NOISE:
        raise ValueError(f"noise must be in [0, {MAX_NOISE}], got {noise}")
    if not 0 <= train_ratio <= 1:
        raise ValueError(f"train_ratio must be in [0, 1], got {train_ratio}")
    spec, rng = DATASETS[name], np.random.default_rng(seed)
    if not spec.is_2d:
        pixels, labels = _load_digits()
        train, test = split(rng, len(labels), train_ratio)
        x = np.clip(pixels + rng.normal(0, noise, pixels.shape), 0, 1)
        return Dataset(
            spec=spec,
            features=[f"px{i}" for i in range(pixels.shape[1])],
            x_train=x[train],
            y_train=labels[train],
            x_test=x[test],
            y_test=labels[test],
            points_train=None,
            points_test=None,
            extent=None,
            target_range=None,
        )
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2, got {n_samples}")
    points, y = _GENERATORS[name](rng, n_samples, noise)
    x = featurize(points, features)
    train, test = split(rng, n_samples, train_ratio)
    return Dataset(
        spec=spec,
        features=list(features),
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        points_train=points[train],
        points_test=points[test],
        extent=EXTENT,
        target_range=(-1.0, 1.0) if spec.task == "regression" else None,
    )
