"""What an evaluation means: convergence on held-out data, sustained divergence, plateaus.

Each detector sees one evaluation at a time (full train and test losses, accuracies and
test entropy) and says when its event happens; docs/protocol.md states every number.
"""

import math
from collections import deque
from dataclasses import dataclass

# Convergence (chime): the model generalises, judged on the test split.
SOLVED_TEST_ACCURACY = 0.98  # classification: this share of held-out points right ...
SOLVED_TEST_LOSS_FRACTION = 0.25  # ... and test loss at most this fraction of the reference
SETTLED_WINDOW = 10  # evaluations over which the test loss must be flat to count as settled
SETTLED_TOLERANCE = 0.02  # relative range (max - min) / mean of the test loss that is flat
SETTLED_PROGRESS = 0.5  # settled counts only below this fraction of the reference loss
SETTLED_ACCURACY_RANGE = 0.01  # classification: test accuracy within 1 point over the window ...
# ... counts as settled once the test loss is down to SOLVED_TEST_LOSS_FRACTION of the reference
GENERALISATION_GAP = 0.1  # test loss may exceed train loss by this fraction of the reference

# Divergence (alarm) for bounded losses: the loss stays worse than knowing nothing.
DIVERGENCE_MARGIN = 1.5  # train loss above this multiple of the reference counts as worse
DIVERGENCE_PATIENCE = 5  # consecutive such evaluations, after the first epoch, raise the alarm

# Plateau (underfitting): flat while clearly not done.
PLATEAU_WINDOW = 10  # evaluations whose train loss is compared
PLATEAU_TOLERANCE = 0.02  # relative range of the train loss that counts as flat
PLATEAU_UNSOLVED_ACCURACY = 0.9  # classification: train accuracy below this is not done
PLATEAU_UNSOLVED_FRACTION = 0.1  # regression: train loss above this fraction of the reference
PLATEAU_EXIT = 0.05  # learning resumed: train loss this far below the plateau's level


@dataclass(frozen=True)
class Evaluation:
    """The numbers of one eval message the detectors read."""

    step: int
    train_loss: float
    test_loss: float
    train_accuracy: float | None = None
    test_accuracy: float | None = None
    test_entropy: float | None = None

    @property
    def finite(self) -> bool:
        return math.isfinite(self.train_loss) and math.isfinite(self.test_loss)


def flat(values: deque[float], tolerance: float) -> bool:
    """The window is full and its values lie within `tolerance` of their mean."""
    if len(values) < (values.maxlen or 0):
        return False
    mean = sum(values) / len(values)
    return max(values) - min(values) <= tolerance * mean


class ConvergenceDetector:
    """Converged: held-out data is solved, or the test loss settled after real progress.

    `reference` is the loss to beat: the larger of the first evaluation's and the loss of
    always predicting the class prior (the mean target for regression). Fires once.
    """

    def __init__(self, reference: float) -> None:
        self.reference = max(reference, 1e-12)
        self.test_losses: deque[float] = deque(maxlen=SETTLED_WINDOW)
        self.test_accuracies: deque[float] = deque(maxlen=SETTLED_WINDOW)
        self.fired = False

    def observe(self, ev: Evaluation) -> str | None:
        if self.fired or not ev.finite:
            return None
        self.test_losses.append(ev.test_loss)
        if ev.test_accuracy is not None:
            self.test_accuracies.append(ev.test_accuracy)
        if ev.test_loss > ev.train_loss + GENERALISATION_GAP * self.reference:
            return None  # fitting the training set only: the overfit voice tells that story
        reason = None
        if (
            ev.test_accuracy is not None
            and ev.test_accuracy >= SOLVED_TEST_ACCURACY
            and ev.test_loss <= SOLVED_TEST_LOSS_FRACTION * self.reference
        ):
            reason = f"solved: {ev.test_accuracy:.0%} of held-out points right"
        elif (
            ev.test_loss <= SOLVED_TEST_LOSS_FRACTION * self.reference
            and len(self.test_accuracies) == SETTLED_WINDOW
            and max(self.test_accuracies) - min(self.test_accuracies) <= SETTLED_ACCURACY_RANGE
        ):
            reason = (
                f"test accuracy settled at {ev.test_accuracy:.1%} "
                f"(within {SETTLED_ACCURACY_RANGE:.0%} over {SETTLED_WINDOW} evals)"
            )
        elif ev.test_loss <= SETTLED_PROGRESS * self.reference and flat(
            self.test_losses, SETTLED_TOLERANCE
        ):
            reason = f"test loss settled within {SETTLED_TOLERANCE:.0%} over {SETTLED_WINDOW} evals"
        self.fired = reason is not None
        return reason


class DivergenceDetector:
    """Diverged though bounded: the train loss stays above 1.5x the reference for 5 evals."""

    def __init__(self, reference: float, after_step: int) -> None:
        self.limit = DIVERGENCE_MARGIN * max(reference, 1e-12)
        self.after_step = after_step
        self.worse = 0

    def observe(self, ev: Evaluation) -> str | None:
        if ev.step < self.after_step:
            return None
        self.worse = self.worse + 1 if ev.train_loss > self.limit else 0
        if self.worse < DIVERGENCE_PATIENCE:
            return None
        return (
            f"train loss {ev.train_loss:.3g} stayed above {DIVERGENCE_MARGIN:g}x the loss of "
            f"knowing nothing ({self.limit / DIVERGENCE_MARGIN:.3g}) for {self.worse} evals"
        )


class PlateauDetector:
    """Stuck: train loss flat over a window while the model is clearly not done.

    `observe` answers "plateau" when it sets in, "plateau_end" when learning resumes.
    """

    def __init__(self, reference: float, classify: bool) -> None:
        self.reference, self.classify = max(reference, 1e-12), classify
        self.train_losses: deque[float] = deque(maxlen=PLATEAU_WINDOW)
        self.level: float | None = None  # the plateau's loss while stuck

    def unsolved(self, ev: Evaluation) -> bool:
        if self.classify and ev.train_accuracy is not None:
            return ev.train_accuracy < PLATEAU_UNSOLVED_ACCURACY
        return ev.train_loss > PLATEAU_UNSOLVED_FRACTION * self.reference

    def observe(self, ev: Evaluation) -> str | None:
        if not ev.finite:
            return None
        self.train_losses.append(ev.train_loss)
        if self.level is not None:
            if ev.train_loss < (1 - PLATEAU_EXIT) * self.level or not self.unsolved(ev):
                self.level = None
                self.train_losses.clear()
                return "plateau_end"
            return None
        if self.unsolved(ev) and flat(self.train_losses, PLATEAU_TOLERANCE):
            self.level = sum(self.train_losses) / len(self.train_losses)
            return "plateau"
        return None
