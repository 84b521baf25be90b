"""Optimizers: each update against a from-the-paper reference, then each one learning."""

import math

import numpy as np
import pytest

from app.engine.config import RunConfig
from app.engine.optim import OPTIMIZERS, SGD, Adam, Momentum, make_optimizer
from app.engine.trainer import Trainer

PARAMS = [0.5, -1.0, 2.0, 0.0]
GRADS = [[0.1, -0.2, 0.3, 1e-4], [0.3, 0.1, -0.5, -2e-4], [-0.2, 0.4, 0.05, 3e-4]]


def run(optimizer):
    """Apply the hand-made gradients in turn; the params and updates after each step."""
    params = np.array(PARAMS)
    seen = []
    for g in GRADS:
        update = optimizer.apply(params, np.array(g)).copy()
        seen.append((params.copy(), update))
    return seen


def test_sgd_steps_against_the_gradient():
    lr = 0.1
    expected = list(PARAMS)
    for (params, update), g in zip(run(SGD(4, lr)), GRADS, strict=True):
        for j in range(4):
            assert update[j] == pytest.approx(-lr * g[j], rel=1e-15)
            expected[j] -= lr * g[j]
        np.testing.assert_allclose(params, expected, rtol=1e-15)


def test_momentum_is_heavy_ball_velocity():
    lr, beta = 0.1, 0.9
    velocity, expected = [0.0] * 4, list(PARAMS)
    for (params, update), g in zip(run(Momentum(4, lr)), GRADS, strict=True):
        for j in range(4):
            velocity[j] = beta * velocity[j] - lr * g[j]
            expected[j] += velocity[j]
        np.testing.assert_allclose(update, velocity, rtol=1e-14)
        np.testing.assert_allclose(params, expected, rtol=1e-14)


def test_adam_matches_algorithm_1_of_kingma_and_ba():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    m, v, expected = [0.0] * 4, [0.0] * 4, list(PARAMS)
    for t, ((params, update), g) in enumerate(zip(run(Adam(4, lr)), GRADS, strict=True), 1):
        for j in range(4):
            m[j] = b1 * m[j] + (1 - b1) * g[j]
            v[j] = b2 * v[j] + (1 - b2) * g[j] ** 2
            m_hat, v_hat = m[j] / (1 - b1**t), v[j] / (1 - b2**t)
            step = -lr * m_hat / (math.sqrt(v_hat) + eps)
            assert update[j] == pytest.approx(step, rel=1e-12)
            expected[j] += step
        np.testing.assert_allclose(params, expected, rtol=1e-12)


def test_adam_first_step_moves_each_parameter_by_about_the_learning_rate():
    (params, update), *_ = run(Adam(4, 0.01))
    np.testing.assert_allclose(np.abs(update[:3]), 0.01, rtol=1e-6)


def test_update_can_live_in_a_given_vector_and_registry_names():
    out = np.zeros(4)
    opt = make_optimizer("momentum", 4, 0.1, update=out)
    opt.apply(np.zeros(4), np.ones(4))
    assert out is opt.update and np.all(out == -0.1)
    assert set(OPTIMIZERS) == {"sgd", "momentum", "adam"}
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("rmsprop", 4, 0.1)


def train(**overrides):
    """Train unpaced with the Runner's cadence; the evals (step, accuracies) along the way."""
    config = RunConfig(**{"steps_per_second": None, **overrides})
    trainer = Trainer(config)
    evals = [trainer.evaluate(with_grid=False)[0]]
    while not trainer.done:
        assert trainer.train_step() is None
        if trainer.buffer.full:
            trainer.buffer.take()
        if trainer.step % trainer.eval_every == 0:
            evals.append(trainer.evaluate(with_grid=False)[0])
    return evals


SPIRAL_ADAM_STEPS = 1500  # seed 0 first passes 95 % at step 882


def test_adam_learns_the_spiral():
    """spiral (500 points, no noise, x1 x2 only), tanh [8, 8], Adam lr 0.02, batch 64, seed 0."""
    evals = train(
        dataset="spiral",
        activation="tanh",
        hidden=[8, 8],
        optimizer="adam",
        learning_rate=0.02,
        batch_size=64,
        seed=0,
        max_steps=SPIRAL_ADAM_STEPS,
    )
    assert evals[0]["train_accuracy"] < 0.7
    assert max(e["train_accuracy"] for e in evals) >= 0.95


@pytest.mark.parametrize(
    ("optimizer", "dataset", "learning_rate", "steps"),
    [
        ("sgd", "gauss", 0.03, 300),
        ("momentum", "gauss", 0.03, 300),
        ("sgd", "circle", 0.1, 1000),
        ("momentum", "circle", 0.03, 1000),
    ],
)
def test_sgd_and_momentum_learn(optimizer, dataset, learning_rate, steps):
    evals = train(
        dataset=dataset, optimizer=optimizer, learning_rate=learning_rate, max_steps=steps
    )
    assert evals[-1]["train_accuracy"] >= 0.95
    assert evals[-1]["test_accuracy"] >= 0.95
    assert evals[-1]["train_loss"] < 0.5 * evals[0]["train_loss"]


def test_digits_reach_ninety_percent_test_accuracy():
    """64 -> [32] -> 10, tanh, SGD lr 0.1, batch 32, 600 steps (about 21 epochs)."""
    evals = train(dataset="digits", hidden=[32], batch_size=32, learning_rate=0.1, max_steps=600)
    assert evals[0]["test_accuracy"] < 0.3
    assert evals[-1]["test_accuracy"] >= 0.9
