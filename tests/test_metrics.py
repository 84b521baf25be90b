"""What a step means: entropy, accuracy, crescendo and the chime / alarm / overfit detectors."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from app import metrics
from app.metrics import ConvergenceDetector, Crescendo, OverfitDetector


def test_entropy_is_one_for_a_coin_toss_and_zero_when_certain():
    assert metrics.entropy(np.full((4, 1), 0.5)) == pytest.approx(1.0)
    assert metrics.entropy(np.full((4, 10), 0.1)) == pytest.approx(1.0)
    assert metrics.entropy(np.array([[1.0], [0.0]])) == pytest.approx(0.0, abs=1e-9)
    assert metrics.entropy(np.eye(10)) == pytest.approx(0.0, abs=1e-9)
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    assert metrics.entropy(np.array([[0.9], [0.1]])) == pytest.approx(h)


@given(arrays(np.float64, (6, 4), elements=st.floats(0, 1)))
def test_entropy_stays_in_the_unit_interval(raw):
    p = raw + 1e-3
    p /= p.sum(axis=1, keepdims=True)
    assert 0.0 <= metrics.entropy(p) <= 1.0 + 1e-12
    assert 0.0 <= metrics.entropy(p[:, :1]) <= 1.0 + 1e-12


def test_accuracy_thresholds_sigmoid_and_argmaxes_softmax():
    assert metrics.accuracy(np.array([[0.9], [0.4], [0.6]]), np.array([[1.0], [0.0], [0.0]])) == (
        pytest.approx(2 / 3)
    )
    p = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    assert metrics.accuracy(p, np.array([1, 2])) == 0.5


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


def test_convergence_chimes_once_when_classification_is_solved():
    d = ConvergenceDetector()
    assert d.observe(0.7, 0.7, 0.5) is None  # the start
    assert d.observe(0.1, 0.1, 0.99) is None  # not every point right yet
    assert d.observe(0.2, 0.2, 1.0) is None  # every point right, loss not down 10x
    reason = d.observe(0.05, 0.06, 1.0)
    assert reason and "solved" in reason
    assert d.observe(0.01, 0.01, 1.0) is None  # fired once only


def test_convergence_chimes_on_a_plateau_after_progress_or_a_solved_regression():
    d = ConvergenceDetector()
    d.observe(1.0, 1.0)
    losses = [0.3 + 0.0005 * (i % 2) for i in range(metrics.PLATEAU_WINDOW)]
    results = [d.observe(loss, loss) for loss in losses]
    assert results[:-1] == [None] * (metrics.PLATEAU_WINDOW - 1)
    assert "flat" in results[-1]

    stuck = ConvergenceDetector()  # flat, but no real progress: not a chime
    stuck.observe(1.0, 1.0)
    assert all(stuck.observe(0.9, 0.9) is None for _ in range(3 * metrics.PLATEAU_WINDOW))

    regression = ConvergenceDetector()
    regression.observe(1.0, 1.0)
    assert regression.observe(0.01, 0.01) is None
    assert "solved" in regression.observe(0.0009, 0.002)


def test_convergence_ignores_non_finite_losses():
    d = ConvergenceDetector()
    assert d.observe(math.nan, 1.0) is None
    assert d.initial is None


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
