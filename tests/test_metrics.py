"""What a step means: entropy, accuracy, crescendo and the chime / alarm / overfit detectors."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from app.engine import metrics
from app.engine.metrics import Crescendo, OverfitDetector


def plain_entropy(p: np.ndarray) -> float:
    """Mean -sum p log p over rows (p of the positive class for one column), over log K."""
    if p.shape[1] == 1:
        p = np.hstack([p, 1 - p])
    terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return float(terms.sum(axis=1).mean() / math.log(p.shape[1]))


def plain_cross_entropy(p: np.ndarray, y: np.ndarray) -> float:
    """Mean -log p(true class); for one column, -y log p - (1 - y) log(1 - p)."""
    if p.shape[1] == 1:
        p, y = np.hstack([1 - p, p]), y.ravel().astype(int)
    return float(-np.log(p[np.arange(len(y)), y]).mean())


def plain_accuracy(p: np.ndarray, y: np.ndarray) -> float:
    if p.shape[1] == 1:
        return float(((p.ravel() > 0.5) == (y.ravel() > 0.5)).mean())
    return float((p.argmax(axis=1) == y).mean())


def from_logits(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of logits as the network's columns: logits, probabilities, log-partition."""
    zc = z.T
    if zc.shape[0] == 1:
        log_norm = np.logaddexp(0.0, zc)
    else:
        log_norm = np.log(np.exp(zc - zc.max(axis=0)).sum(axis=0, keepdims=True)) + zc.max(axis=0)
    probs = np.exp(zc - log_norm) if zc.shape[0] > 1 else 1 / (1 + np.exp(-zc))
    return zc, probs, log_norm


logits = arrays(  # away from 0, where s(z) rounds to exactly 1/2 and the thresholds tie
    np.float64,
    st.tuples(st.integers(1, 12), st.sampled_from([1, 3, 10])),
    elements=st.floats(-8, 8).filter(lambda v: abs(v) > 1e-6),
)


@given(logits, st.integers(0, 2**32 - 1))
def test_log_partition_formulas_match_the_plain_definitions(z, seed):
    n, k = z.shape
    zc, probs, log_norm = from_logits(z)
    p_rows = probs.T
    rng = np.random.default_rng(seed)
    if k == 1:
        y = rng.integers(0, 2, n).astype(float)
        targets, labels = y.reshape(1, -1), (y > 0.5).reshape(1, -1)
    else:
        y = rng.integers(0, k, n)
        targets, labels = np.eye(k)[y].T, y
    total = float(log_norm.sum())
    assert metrics.cross_entropy(total, zc, targets, n) == pytest.approx(
        plain_cross_entropy(p_rows, y), rel=1e-9, abs=1e-9
    )
    assert metrics.predictive_entropy(total, zc, probs, n, max(k, 2)) == pytest.approx(
        min(plain_entropy(p_rows), 1.0), rel=1e-7, abs=1e-9
    )
    assert metrics.count_correct(zc, labels) / n == plain_accuracy(p_rows, y)


def test_entropy_is_one_for_a_coin_toss_and_zero_when_certain():
    for z in (np.zeros((4, 1)), np.zeros((4, 10))):  # uniform guesses
        zc, probs, log_norm = from_logits(z)
        k = max(z.shape[1], 2)
        assert metrics.predictive_entropy(log_norm.sum(), zc, probs, 4, k) == pytest.approx(1.0)
    zc, probs, log_norm = from_logits(np.array([[60.0], [-60.0]]))  # certain either way
    assert metrics.predictive_entropy(log_norm.sum(), zc, probs, 2, 2) == pytest.approx(0, abs=1e-9)


def test_crescendo_grows_as_the_loss_falls_and_stays_in_range():
    c = Crescendo()
    c.start(1.0)
    falling = [c.update(1.0 * 0.97**i) for i in range(400)]
    assert falling[0] == 0.0
    assert all(b >= a for a, b in zip(falling, falling[1:], strict=False))
    assert falling[-1] == 1.0  # the smoothed loss is 100x below its start: full volume
    rising = [c.update(1.0) for _ in range(200)]
    assert all(b <= a for a, b in zip(rising, rising[1:], strict=False))
    assert rising[-1] < 0.05


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50))
def test_crescendo_is_always_a_volume(losses):
    c = Crescendo()
    for loss in losses:
        assert 0.0 <= c.update(loss) <= 1.0


def test_crescendo_is_silent_on_a_non_finite_loss():
    c = Crescendo()
    c.start(1.0)
    assert c.update(math.nan) == 0.0
    assert c.update(math.inf) == 0.0


@pytest.mark.parametrize(
    ("loss", "initial", "diverged"),
    [
        (math.nan, 1.0, True),
        (math.inf, 1.0, True),
        (-math.inf, None, True),
        (1000.1, 1.0, True),
        (999.0, 1.0, False),
        (5.0, None, False),
        (0.0, 0.7, False),
    ],
)
def test_divergence_is_non_finite_or_a_thousand_times_the_start(loss, initial, diverged):
    reason = metrics.diverged(loss, initial)
    assert (reason is not None) == diverged
    if diverged:
        assert "finite" in reason or "1000x" in reason


def overfit_pairs(n, test_slope, train_slope):
    return [(1.0 + train_slope * i, 1.0 + test_slope * i) for i in range(n)]


def test_overfit_fires_once_when_test_rises_while_train_falls():
    d = OverfitDetector()
    fired = [d.observe(tr, te) for tr, te in overfit_pairs(30, 0.02, -0.01)]
    assert fired.count(True) == 1
    assert fired.index(True) == metrics.OVERFIT_WINDOW - 1  # as soon as the window is full


@pytest.mark.parametrize(
    ("test_slope", "train_slope"),
    [(-0.01, -0.02), (0.02, 0.01), (0.0005, -0.01), (0.0, 0.0)],
)
def test_overfit_stays_quiet_otherwise(test_slope, train_slope):
    d = OverfitDetector()
    assert not any(d.observe(tr, te) for tr, te in overfit_pairs(40, test_slope, train_slope))


@given(
    arrays(
        np.float64,
        st.tuples(st.integers(2, 16), st.integers(1, 40)),
        elements=st.sampled_from([-2.0, -0.0, 0.0, 1.0, 1.5, 3.0, np.inf, -np.inf, np.nan]),
    )
)
def test_predicted_from_the_peak_is_argmax_with_its_ties_and_nans(z):
    """The first row equal to the column's peak is argmax's answer: ties to the first, -0 == 0,
    infinities; a NaN anywhere leaves it to argmax (which points at the first NaN)."""
    peak = np.maximum.reduce(z, axis=0)
    np.testing.assert_array_equal(metrics.predicted(z, peak), z.argmax(axis=0))
    np.testing.assert_array_equal(metrics.predicted(z), z.argmax(axis=0))


def test_predicted_for_one_output_is_the_sign_of_the_logit():
    z = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(metrics.predicted(z), [[False, False, True]])


@given(
    arrays(
        np.float64, st.tuples(st.integers(1, 12), st.integers(1, 40)), elements=st.floats(-1e6, 1e6)
    )
)
def test_inner_is_vdot_bit_for_bit(a):
    b = a[::-1].copy() + 0.5
    assert metrics.inner(a, b) == float(np.vdot(a, b))
    assert metrics.inner(a[:, ::2], b[:, ::2]) == float(np.vdot(a[:, ::2], b[:, ::2]))
