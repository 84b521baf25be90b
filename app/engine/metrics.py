"""What a step means: loss, entropy, accuracy, crescendo volume, chime/alarm/overfit detectors."""

import math
from collections import deque

import numpy as np

CRESCENDO_DECADES = 2.0  # full volume once the smoothed loss is 100x below its start
CRESCENDO_SMOOTHING = 0.05  # EMA weight of each batch loss
DIVERGENCE_FACTOR = 1000.0  # loss beyond this multiple of the initial loss is divergence
OVERFIT_WINDOW = 10  # evaluations compared for a rising test loss
OVERFIT_RISE = 0.05  # relative rise of test loss (second half vs first half of the window)
OVERFIT_ABOVE_BEST = 0.10  # and the test loss must stand this far above its best so far


def inner(a: np.ndarray, b: np.ndarray) -> float:
    """<a, b> over every element in C order, exactly np.vdot's sum.

    Contiguous arrays go straight to the same BLAS ddot, skipping np.vdot's array-function
    dispatch, which on a batch costs more than the sum itself. Strided ones are left to
    np.vdot, whose strided ddot may round differently from a contiguous copy's.
    """
    if a.flags.c_contiguous and b.flags.c_contiguous:
        return float(a.ravel().dot(b.ravel()))
    return float(np.vdot(a, b))


def cross_entropy(log_norm_sum: float, logits: np.ndarray, targets: np.ndarray, n: int) -> float:
    """Mean cross-entropy over `n` examples from the output's log-partition A(z).

    With p = softmax(z), log p_k = z_k - A(z) where A(z) = log sum_k e^(z_k), so for a
    one-hot target t the loss -sum_k t_k log p_k is A(z) - <t, z>. A sigmoid is the same
    with a second logit fixed at 0: A(z) = log(1 + e^z) (softplus) and
    -t log s(z) - (1 - t) log(1 - s(z)) = A(z) - t z. Summed over a batch, the loss is
    sum A - <T, Z>: the network already computed A for the probabilities, so no further
    log or exp is needed. Columns are (outputs, examples); `log_norm_sum` is sum A.
    """
    return (log_norm_sum - inner(targets, logits)) / n


def predictive_entropy(
    log_norm_sum: float, logits: np.ndarray, probs: np.ndarray, n: int, n_classes: int
) -> float:
    """Mean predictive entropy in [0, 1] (0 certain, 1 a coin toss), from the log-partition.

    H(p) = -sum_k p_k log p_k = -sum_k p_k (z_k - A(z)) = A(z) - <p, z>, since the p_k sum to
    1; for a sigmoid, H = softplus(z) - s(z) z. Divided by log K (log 2 for one output),
    the entropy of the uniform guess. Rounding can stray just past the ends: clipped.
    """
    h = (log_norm_sum - inner(probs, logits)) / (n * math.log(max(n_classes, 2)))
    return 0.0 if h < 0.0 else 1.0 if h > 1.0 else h


def predicted(logits: np.ndarray, peak: np.ndarray | None = None) -> np.ndarray:
    """Each example's answer: the argmax class for softmax; z > 0 (s(z) > 1/2) for one output.

    Columns are (outputs, examples): class indices, or one row of booleans for one output.
    Given `peak`, each column's largest logit (a softmax forward has it already), the argmax
    is the first row equal to the peak: with rank k for row 0 down to 1 for the last, the
    answer is K minus the largest rank among the rows equal to the peak. That is argmax's
    index, ties going to the first, in three array passes rather than numpy's loop over
    columns. A NaN peak (a NaN logit) leaves it to argmax, which points at the first NaN.
    """
    if logits.shape[0] == 1:
        return logits > 0.0
    if peak is None or np.count_nonzero(peak != peak):
        return logits.argmax(axis=0)
    k = logits.shape[0]
    rank = np.arange(k, 0, -1, dtype=np.int16).reshape(-1, 1)
    top = np.maximum.reduce((logits == peak) * rank, axis=0)
    return k - top.astype(np.intp)


def count_correct(logits: np.ndarray, labels: np.ndarray) -> int:
    """Right answers from logits; `labels` are class indices, or one row of booleans."""
    return int(np.count_nonzero(predicted(logits) == labels))


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
