"""What a step means: entropy, accuracy, crescendo volume, and the chime/alarm/overfit detectors."""

import math
from collections import deque

import numpy as np

LN2 = math.log(2.0)
CRESCENDO_DECADES = 2.0  # full volume once the smoothed loss is 100x below its start
CRESCENDO_SMOOTHING = 0.05  # EMA weight of each batch loss
DIVERGENCE_FACTOR = 1000.0  # loss beyond this multiple of the initial loss is divergence
SOLVED_FRACTION = 1e-3  # regression: train loss this far below its start is solved
SOLVED_CLASSIFICATION_FRACTION = 0.1  # classification: every train point right and loss this low
PLATEAU_WINDOW = 10  # evaluations compared to call the test loss flat
PLATEAU_TOLERANCE = 0.01  # relative range of the test loss that counts as flat
PLATEAU_MIN_PROGRESS = 0.5  # a plateau counts as convergence only below this fraction of L0
OVERFIT_WINDOW = 10  # evaluations compared for a rising test loss
OVERFIT_RISE = 0.05  # relative rise of test loss (second half vs first half of the window)
OVERFIT_ABOVE_BEST = 0.10  # and the test loss must stand this far above its best so far


def entropy(p: np.ndarray) -> float:
    """Mean predictive entropy in [0, 1]: 0 is certain, 1 is a coin toss."""
    if p.shape[1] == 1:
        q = np.clip(p.ravel(), 1e-12, 1 - 1e-12)
        h = -(q * np.log(q) + (1 - q) * np.log1p(-q))
        return float(h.mean() / LN2)
    q = np.clip(p, 1e-12, 1.0)
    return float(-(q * np.log(q)).sum(axis=1).mean() / math.log(p.shape[1]))


def accuracy(p: np.ndarray, y: np.ndarray) -> float:
    """Fraction correct: threshold 0.5 for one sigmoid output, argmax for softmax."""
    if p.shape[1] == 1:
        return float(((p.ravel() > 0.5) == (y.ravel() > 0.5)).mean())
    return float((p.argmax(axis=1) == y).mean())


class Crescendo:
    """Volume in [0, 1] that grows as the smoothed loss falls, on a log scale from its start."""

    SCALE = 1.0 / (CRESCENDO_DECADES * math.log(10.0))  # full volume per unit of log-progress

    def __init__(self) -> None:
        self.initial: float | None = None
        self.smoothed: float | None = None
        self._log_initial = 0.0

    def start(self, initial_loss: float) -> None:
        self.initial = max(float(initial_loss), 1e-12)
        self._log_initial = math.log(self.initial)

    def update(self, loss: float) -> float:
        if not math.isfinite(loss):
            return 0.0
        if self.initial is None:
            self.start(loss)
        s = self.smoothed
        s = loss if s is None else s + CRESCENDO_SMOOTHING * (loss - s)
        self.smoothed = s
        progress = (self._log_initial - math.log(max(s, 1e-300))) * self.SCALE
        return 0.0 if progress < 0.0 else 1.0 if progress > 1.0 else progress


def diverged(loss: float, initial: float | None) -> str | None:
    """Why this loss means divergence, or None: a NaN/Inf loss or one 1,000x its start."""
    if not math.isfinite(loss):
        return "loss is not a finite number"
    if initial is not None and loss > DIVERGENCE_FACTOR * max(initial, 1e-12):
        return f"loss {loss:.3g} exceeds {DIVERGENCE_FACTOR:g}x its initial {initial:.3g}"
    return None


class ConvergenceDetector:
    """Converged: the task is solved, or test loss is flat after real progress. Fires once."""

    def __init__(self) -> None:
        self.initial: float | None = None
        self.fired = False
        self.test_losses: deque[float] = deque(maxlen=PLATEAU_WINDOW)

    def observe(
        self, train_loss: float, test_loss: float, train_accuracy: float | None = None
    ) -> str | None:
        if self.fired or not (math.isfinite(train_loss) and math.isfinite(test_loss)):
            return None
        if self.initial is None:
            self.initial = max(train_loss, 1e-12)
            return None
        self.test_losses.append(test_loss)
        reason = None
        if train_accuracy is not None:
            if (
                train_accuracy >= 1.0
                and train_loss <= SOLVED_CLASSIFICATION_FRACTION * self.initial
            ):
                reason = "solved: every training point classified, loss down 10x"
        elif train_loss <= SOLVED_FRACTION * self.initial:
            reason = "solved: train loss fell 1000x below its start"
        if (
            not reason
            and len(self.test_losses) == PLATEAU_WINDOW
            and train_loss <= (PLATEAU_MIN_PROGRESS * self.initial)
        ):
            lo, hi = min(self.test_losses), max(self.test_losses)
            mean = sum(self.test_losses) / PLATEAU_WINDOW
            if hi - lo <= PLATEAU_TOLERANCE * mean:
                reason = (
                    f"test loss flat within {PLATEAU_TOLERANCE:.0%} over {PLATEAU_WINDOW} evals"
                )
        self.fired = reason is not None
        return reason


class OverfitDetector:
    """Test loss rising while train loss falls over a window; fires once per run."""

    def __init__(self) -> None:
        self.train: deque[float] = deque(maxlen=OVERFIT_WINDOW)
        self.test: deque[float] = deque(maxlen=OVERFIT_WINDOW)
        self.best = math.inf
        self.fired = False

    def observe(self, train_loss: float, test_loss: float) -> bool:
        if self.fired:
            return False
        self.train.append(train_loss)
        self.test.append(test_loss)
        self.best = min(self.best, test_loss)
        if len(self.test) < OVERFIT_WINDOW:
            return False
        half = OVERFIT_WINDOW // 2
        tr, te = list(self.train), list(self.test)
        test_rising = sum(te[half:]) > (1 + OVERFIT_RISE) * sum(te[:half])
        train_falling = sum(tr[half:]) < sum(tr[:half])
        above_best = test_loss > (1 + OVERFIT_ABOVE_BEST) * self.best
        self.fired = test_rising and train_falling and above_best
        return self.fired
