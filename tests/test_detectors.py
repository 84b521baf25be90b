"""Each detector fires when it should and stays quiet when it should not (synthetic evals)."""

import math

from app.engine import detectors as d
from app.engine.detectors import (
    ConvergenceDetector,
    DivergenceDetector,
    Evaluation,
    PlateauDetector,
)

REF = math.log(2)  # a balanced binary task knowing nothing


def ev(step=0, train=0.5, test=0.5, train_acc=None, test_acc=None, entropy=None):
    return Evaluation(step, train, test, train_acc, test_acc, entropy)


def test_convergence_chimes_once_when_held_out_data_is_solved():
    c = ConvergenceDetector(REF)
    assert c.observe(ev(train=0.1, test=0.15, test_acc=0.97)) is None  # 97 %: not yet
    reason = c.observe(ev(train=0.1, test=0.15, test_acc=0.98))
    assert reason and "held-out" in reason
    assert c.observe(ev(train=0.05, test=0.1, test_acc=1.0)) is None  # once only


def test_a_model_that_fits_only_its_training_set_never_chimes():
    c = ConvergenceDetector(REF)
    for _ in range(3 * d.SETTLED_WINDOW):  # train perfect, test flat but far worse
        assert c.observe(ev(train=1e-9, test=16.0, train_acc=1.0, test_acc=0.99)) is None


def test_a_settled_test_loss_chimes_only_after_real_progress():
    c = ConvergenceDetector(REF)
    results = [c.observe(ev(train=0.25, test=0.3 + 0.001 * (i % 2))) for i in range(20)]
    assert results[: d.SETTLED_WINDOW - 1] == [None] * (d.SETTLED_WINDOW - 1)
    assert "settled" in results[d.SETTLED_WINDOW - 1]
    stuck = ConvergenceDetector(REF)  # flat near the loss of knowing nothing: no chime
    assert all(stuck.observe(ev(train=0.6, test=0.6)) is None for _ in range(30))


def test_a_settled_test_accuracy_chimes_once_the_loss_is_well_down():
    c = ConvergenceDetector(math.log(10))
    accs = [0.95 + 0.001 * (i % 3) for i in range(d.SETTLED_WINDOW)]
    results = [c.observe(ev(train=0.01, test=0.15, test_acc=a)) for a in accs]
    assert results[-1] and "accuracy settled" in results[-1] and not any(results[:-1])
    high = ConvergenceDetector(math.log(10))  # same accuracies, loss still high: no chime
    noisy = [(1.2 + 0.1 * (i % 2), a) for i, a in enumerate(accs * 3)]  # loss above 0.25 x
    assert not any(high.observe(ev(train=1.2, test=t, test_acc=a)) for t, a in noisy)


def test_divergence_needs_five_evals_above_the_margin_after_the_first_epoch():
    div = DivergenceDetector(REF, after_step=25)
    above = 1.01 * d.DIVERGENCE_MARGIN * REF
    assert all(div.observe(ev(step=s, train=above)) is None for s in range(0, 25, 5))
    results = [div.observe(ev(step=25 + s, train=above)) for s in range(d.DIVERGENCE_PATIENCE)]
    assert results[:-1] == [None] * (d.DIVERGENCE_PATIENCE - 1)
    assert "knowing nothing" in results[-1]


def test_divergence_forgives_a_spike_that_comes_back_down():
    div = DivergenceDetector(REF, after_step=0)
    above, below = 3 * REF, 0.9 * d.DIVERGENCE_MARGIN * REF
    for _ in range(10):
        for loss in [above] * (d.DIVERGENCE_PATIENCE - 1) + [below]:
            assert div.observe(ev(step=100, train=loss)) is None


def test_plateau_sets_in_when_flat_and_unsolved_and_ends_when_learning_resumes():
    p = PlateauDetector(REF, classify=True)
    flat = [p.observe(ev(train=0.66 + 0.001 * (i % 2), train_acc=0.6)) for i in range(12)]
    assert flat.index("plateau") == d.PLATEAU_WINDOW - 1 and flat.count("plateau") == 1
    assert p.observe(ev(train=0.6, train_acc=0.7)) == "plateau_end"  # 9 % lower
    assert p.observe(ev(train=0.59, train_acc=0.7)) is None


def test_no_plateau_while_learning_or_once_solved():
    falling = PlateauDetector(REF, classify=True)
    assert not any(falling.observe(ev(train=0.69 * 0.97**i, train_acc=0.6)) for i in range(40))
    solved = PlateauDetector(REF, classify=True)
    assert not any(solved.observe(ev(train=0.05, train_acc=0.99)) for _ in range(40))
    regression = PlateauDetector(1.0, classify=False)
    assert not any(regression.observe(ev(train=0.05)) for _ in range(40))  # 5 % of the start
    assert "plateau" in [regression.observe(ev(train=0.5)) for _ in range(d.PLATEAU_WINDOW)]
