"""Events on real training, thread-free: divergence, convergence, plateau, live changes.

Each event is held both ways; the grid of datasets x optimizers at lr <= 0.1 never alarms.
"""

import numpy as np
import pytest

from app.engine.config import LIVE_FIELDS, RunConfig
from app.engine.datasets import DATASETS
from app.engine.scenes import rehearse
from app.engine.trainer import Trainer

MAX_BEATS_PER_SECOND = 16  # the page fuses faster steps into groups (static/js/audio.js)
FIRST_RUN_SECONDS = 60  # the first run must chime within this at its own tempo


def kinds(events):
    return [e["type"] for e in events]


def test_the_first_run_chimes_within_a_minute_at_an_audible_tempo():
    config = RunConfig()  # what `POST /api/runs {}` and the page both start from
    assert config.steps_per_second <= MAX_BEATS_PER_SECOND and config.stop_at_convergence
    events, _ = rehearse(config, int(FIRST_RUN_SECONDS * config.steps_per_second), "chime")
    assert "chime" in kinds(events) and "alarm" not in kinds(events)
    chime = next(e for e in events if e["type"] == "chime")
    assert chime["step"] / config.steps_per_second <= FIRST_RUN_SECONDS
    assert "held-out" in chime["reason"] or "test" in chime["reason"]


@pytest.mark.parametrize(
    "overrides",
    [
        dict(optimizer="sgd"),
        dict(optimizer="adam"),
        dict(optimizer="sgd", features=["x1", "x2"]),
        dict(optimizer="adam", features=["x1", "x2"]),
        dict(dataset="circle", features=["x1", "x2"]),
        dict(dataset="digits"),
    ],
    ids=["spiral-sgd", "spiral-adam", "spiral-xy-sgd", "spiral-xy-adam", "circle", "digits"],
)
def test_learning_rate_ten_alarms_even_on_bounded_losses(overrides):
    events, info = rehearse(RunConfig(learning_rate=10.0, **overrides), 400)
    assert kinds(events)[-1] == "alarm" and "chime" not in kinds(events)
    assert info["step"] <= 400


@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_no_alarm_at_learning_rates_up_to_a_tenth(dataset, optimizer):
    """The default settings of every dataset x optimizer at lr 0.1 (the highest allowed here)."""
    config = RunConfig(
        dataset=dataset, optimizer=optimizer, learning_rate=0.1, stop_at_convergence=False
    )
    events, info = rehearse(config, 600)
    assert "alarm" not in kinds(events), events
    assert info["step"] == 600


def test_an_overfit_model_warns_and_does_not_chime():
    """The issue's case: train loss ~1e-10, test loss ~16."""
    config = RunConfig(
        dataset="xor", n_samples=100, noise=0.5, train_ratio=0.1, hidden=[64, 64, 64],
        activation="relu", learning_rate=0.01, features=["x1", "x2"],
    )  # fmt: skip
    events, _ = rehearse(config, 1500)
    assert "overfit" in kinds(events) and "chime" not in kinds(events)


def test_a_linear_network_on_the_spiral_plateaus_and_never_chimes():
    events, _ = rehearse(RunConfig(hidden=[], features=["x1", "x2"]), 1500)
    assert "plateau" in kinds(events) and "chime" not in kinds(events)
    plateau = next(e for e in events if e["type"] == "plateau")
    assert plateau["message"].startswith("stuck") and plateau["entropy"] > 0.5


def test_a_plateau_ends_when_learning_resumes():
    events, _ = rehearse(RunConfig(features=["x1", "x2"], stop_at_convergence=False), 800)
    assert kinds(events)[:2] == ["plateau", "plateau_end"]
    assert events[1]["step"] > events[0]["step"]


def test_a_run_that_learns_does_not_plateau():
    events, _ = rehearse(RunConfig(dataset="circle", features=["x1", "x2"]), 800, "chime")
    assert kinds(events) == ["chime"]


def run_with_changes(config: RunConfig, schedule: dict[int, dict], steps: int):
    """Every step's metrics and every eval, with `schedule[step]` applied after that step."""
    trainer, losses, evals, notes = Trainer(config), [], [], []
    trainer.evaluate(with_grid=False)
    while trainer.step < steps:
        if trainer.step in schedule:
            notes.append(trainer.apply_changes(schedule[trainer.step]))
        trainer.train_step()
        if trainer.step % trainer.eval_every == 0:
            evals.append(trainer.evaluate(with_grid=False)[0])
        losses.append(trainer.buffer.take())
    block = {k: np.concatenate([b[k] for b in losses]) for k in losses[0]}
    return trainer, block, evals, notes


SCHEDULE = {
    40: {"learning_rate": 0.3},
    90: {"optimizer": "momentum", "regularization": "l2", "regularization_rate": 0.001},
    130: {"batch_size": 7},
}


def test_the_same_changes_at_the_same_steps_replay_bit_identically():
    config = RunConfig(stop_at_convergence=False)
    a, a_block, a_evals, notes = run_with_changes(config, SCHEDULE, 200)
    b, b_block, b_evals, _ = run_with_changes(config, SCHEDULE, 200)
    for name in a_block:
        if name != "t":
            assert np.array_equal(a_block[name], b_block[name], equal_nan=True), name
    assert a_evals == b_evals
    assert "fresh state" in notes[1]["optimizer"] and "fresh epoch" in notes[2]["batch_size"]
    assert a.config.batch_size == 7 and a.batch_size == 7 and a.optimizer.learning_rate == 0.3
    # the changes took effect: without them (or one step later) the run differs
    _, plain, _, _ = run_with_changes(config, {}, 200)
    _, later, _, _ = run_with_changes(config, {k + 1: v for k, v in SCHEDULE.items()}, 200)
    assert np.array_equal(a_block["loss"][:40], plain["loss"][:40])
    assert not np.array_equal(a_block["loss"], plain["loss"])
    assert not np.array_equal(a_block["loss"], later["loss"])


def test_a_new_batch_size_starts_a_fresh_epoch_and_keeps_counting():
    trainer, block, _, _ = run_with_changes(RunConfig(), {30: {"batch_size": 50}}, 60)
    epochs = block["epoch"]
    assert epochs[29] == 1  # 25 steps an epoch at batch 10
    assert epochs[30] == 2  # the change started epoch 2 ...
    assert trainer.steps_per_epoch == 5 and epochs[-1] == 2 + (60 - 30) // 5  # 5 steps each


def test_only_live_settings_change_a_trainer():
    trainer = Trainer(RunConfig())
    with pytest.raises(ValueError, match="not a live setting"):
        trainer.apply_changes({"hidden": [4]})
    assert set(LIVE_FIELDS) >= {"learning_rate", "optimizer", "batch_size"}
