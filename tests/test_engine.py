"""The Trainer: each step's record against an independent computation, evals, determinism."""

import base64
import math
import zlib

import numpy as np
import pytest

from app.engine.config import RunConfig
from app.engine.metrics import CRESCENDO_DECADES, CRESCENDO_SMOOTHING
from app.engine.steps import LAYER_COLUMNS, SCALAR_COLUMNS
from app.engine.trainer import EVAL_EVERY_MAX, GRID_SIZE, Trainer

EVAL_KEYS = {
    "type",
    "step",
    "train_loss",
    "test_loss",
    "train_accuracy",
    "test_accuracy",
    "test_entropy",
    "grid",
    "confusion",
    "predictions",
}


def config(**overrides) -> RunConfig:
    return RunConfig(**{"steps_per_second": None, "max_steps": 100_000, **overrides})


def drive(trainer: Trainer, steps: int) -> tuple[dict, list[dict], list[dict]]:
    """The Runner's cadence without its thread: every column, every eval, every event."""
    blocks, evals, events = [], [], []

    def evaluate():
        ev, evs = trainer.evaluate(with_grid=True)
        evals.append(ev)
        events.extend(evs)

    evaluate()
    for _ in range(steps):
        reason = trainer.train_step()
        if trainer.buffer.full:
            blocks.append(trainer.buffer.take())
        if reason:
            break
        if trainer.step % trainer.eval_every == 0:
            evaluate()
    blocks.append(trainer.buffer.take())
    columns = {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}
    return columns, evals, events


def batch_indices(trainer: Trainer, step: int) -> np.ndarray:
    """Which training examples step `step` (0-based) uses, replayed from the seed alone."""
    rng = np.random.default_rng([trainer.config.seed, 1])
    b, spe = trainer.batch_size, trainer.steps_per_epoch
    for _ in range(step // spe + 1):
        order = rng.permutation(trainer.n_train)
    i = step % spe
    return order[i * b : (i + 1) * b]


def reference_step(weights, biases, x, y, softmax):
    """Textbook row-major forward and backprop (tanh hidden layers): metrics and gradients."""
    acts = [x]
    for w, b in zip(weights[:-1], biases[:-1], strict=True):
        acts.append(np.tanh(acts[-1] @ w + b))
    z = acts[-1] @ weights[-1] + biases[-1]
    n = len(x)
    if softmax:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        onehot = np.eye(z.shape[1])[y]
        loss = -np.sum(onehot * np.log(p)) / n
        entropy = -np.sum(p * np.log(p)) / n / math.log(z.shape[1])
        accuracy = np.mean(p.argmax(axis=1) == y)
        dz = (p - onehot) / n
    else:
        p = 1 / (1 + np.exp(-z))
        yc = y.reshape(-1, 1)
        loss = -np.mean(yc * np.log(p) + (1 - yc) * np.log(1 - p))
        entropy = -np.mean(p * np.log(p) + (1 - p) * np.log(1 - p)) / math.log(2)
        accuracy = np.mean((p > 0.5) == (yc > 0.5))
        dz = (p - yc) / n
    act_rms = [np.sqrt(np.mean(a**2)) for a in acts[1:]] + [np.sqrt(np.mean(p**2))]
    grads = []
    for k in range(len(weights) - 1, -1, -1):
        grads.insert(0, (acts[k].T @ dz, dz.sum(axis=0)))
        dz = (dz @ weights[k].T) * (1 - acts[k] ** 2)
    grad_norm = [np.sqrt(np.sum(gw**2) + np.sum(gb**2)) for gw, gb in grads]
    return loss, accuracy, entropy, act_rms, grad_norm


@pytest.mark.parametrize(
    "overrides",
    [
        dict(dataset="spiral", hidden=[8, 8], optimizer="momentum", batch_size=10),
        dict(dataset="digits", hidden=[32], optimizer="adam", batch_size=32, learning_rate=0.01),
    ],
    ids=["playground", "digits"],
)
def test_a_steps_record_matches_an_independent_computation(overrides):
    trainer = Trainer(config(**overrides))
    drive(trainer, 37)  # into a later epoch, with optimizer state
    step = trainer.step
    weights = [w.copy() for w in trainer.net.weights]
    biases = [b.copy() for b in trainer.net.biases]
    idx = batch_indices(trainer, step)
    x, y = trainer.data.x_train[idx], trainer.data.y_train[idx]
    softmax = trainer.n_classes > 2

    trainer.train_step()
    row = {name: col[0] for name, col in trainer.buffer.take().items()}

    loss, accuracy, entropy, act_rms, grad_norm = reference_step(weights, biases, x, y, softmax)
    after = list(zip(trainer.net.weights, trainer.net.biases, strict=True))
    before = list(zip(weights, biases, strict=True))
    update_ratio = [
        math.sqrt(
            (np.sum((wa - wb) ** 2) + np.sum((ba - bb) ** 2)) / (np.sum(wa**2) + np.sum(ba**2))
        )
        for (wa, ba), (wb, bb) in zip(after, before, strict=True)
    ]
    assert row["step"] == step + 1
    assert row["epoch"] == (step + 1) // trainer.steps_per_epoch
    assert row["loss"] == pytest.approx(loss, rel=1e-10)
    assert row["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert row["entropy"] == pytest.approx(entropy, rel=1e-9)
    n_layers = trainer.net.n_layers
    assert [len(row[name]) for name in LAYER_COLUMNS] == [n_layers] * 3
    np.testing.assert_allclose(row["act_rms"], act_rms, rtol=1e-10)
    np.testing.assert_allclose(row["grad_norm"], grad_norm, rtol=1e-9)
    np.testing.assert_allclose(row["update_ratio"], update_ratio, rtol=1e-6)


def test_records_are_columnar_with_one_column_per_layer():
    trainer = Trainer(config(hidden=[4, 5, 6]))
    columns, _, _ = drive(trainer, 30)
    assert set(columns) == set(SCALAR_COLUMNS) | set(LAYER_COLUMNS)
    assert list(columns["step"]) == list(range(1, 31))
    for name in LAYER_COLUMNS:
        assert columns[name].shape == (30, 4)
        assert np.all(columns[name] > 0)
    assert np.all(np.diff(columns["t"]) >= 0)


def test_crescendo_is_the_smoothed_log_loss_progress_and_rises_as_loss_falls():
    trainer = Trainer(config(dataset="gauss", learning_rate=0.1))
    columns, evals, _ = drive(trainer, 400)
    initial = evals[0]["train_loss"]
    ema, expected = None, []
    for loss in columns["loss"]:
        ema = loss if ema is None else ema + CRESCENDO_SMOOTHING * (loss - ema)
        progress = math.log(initial / ema) / (CRESCENDO_DECADES * math.log(10))
        expected.append(min(max(progress, 0.0), 1.0))
    np.testing.assert_allclose(columns["crescendo"], expected, rtol=1e-12, atol=1e-15)
    c = columns["crescendo"]
    assert np.all((c >= 0) & (c <= 1))
    assert c[:20].mean() < 0.2 and c[-20:].mean() > 0.8  # loss fell, volume rose


@pytest.mark.parametrize("dataset", ["gauss", "digits"])
def test_entropy_is_in_the_unit_interval(dataset):
    trainer = Trainer(config(dataset=dataset, hidden=[16], learning_rate=0.3))
    columns, evals, _ = drive(trainer, 300)
    h = columns["entropy"]
    assert np.all((h >= 0) & (h <= 1))
    assert h[:10].mean() > h[-10:].mean()  # more certain as it learns
    assert all(0 <= e["test_entropy"] <= 1 for e in evals)


def test_regression_has_no_accuracy_or_entropy():
    trainer = Trainer(config(dataset="plane"))
    columns, evals, _ = drive(trainer, 50)
    assert np.isnan(columns["accuracy"]).all() and np.isnan(columns["entropy"]).all()
    assert evals[-1]["train_accuracy"] is None and evals[-1]["test_entropy"] is None
    assert evals[-1]["test_loss"] < evals[0]["test_loss"]


def test_eval_has_the_protocol_shape_with_a_decision_grid():
    trainer = Trainer(config(dataset="circle"))
    ev, events = trainer.evaluate()
    assert set(ev) == EVAL_KEYS and ev["type"] == "eval" and events == []
    grid = ev["grid"]
    assert grid["size"] == GRID_SIZE
    assert grid["x"] == [-6.0, 6.0] and grid["y"] == [-6.0, 6.0]
    cells = np.frombuffer(zlib.decompress(base64.b64decode(grid["zlib"])), dtype=np.uint8)
    assert cells.shape == (GRID_SIZE * GRID_SIZE,)
    drive(trainer, 1000)
    packed = trainer.evaluate()[0]["grid"]["zlib"]
    cells = np.frombuffer(zlib.decompress(base64.b64decode(packed)), np.uint8)
    image = cells.reshape(GRID_SIZE, GRID_SIZE)
    assert image[GRID_SIZE // 2, GRID_SIZE // 2] > 200  # the disc in the middle is class 1
    assert image[0, 0] < 50 and image[-1, -1] < 50  # the corners are not


def test_digits_eval_sends_confusion_and_predictions_instead_of_a_grid():
    trainer = Trainer(config(dataset="digits", hidden=[32], batch_size=32, learning_rate=0.1))
    drive(trainer, 300)
    ev, _ = trainer.evaluate()
    assert ev["grid"] is None
    confusion = np.array(ev["confusion"])
    n_test = len(trainer.data.y_test)
    assert confusion.shape == (10, 10) and confusion.sum() == n_test
    assert np.trace(confusion) / n_test == pytest.approx(ev["test_accuracy"])
    assert list(confusion.sum(axis=1)) == list(np.bincount(trainer.data.y_test, minlength=10))
    predicted = trainer.net.predict(trainer.data.x_test[:32]).argmax(axis=1)
    assert ev["predictions"] == predicted.tolist()


@pytest.mark.parametrize("dataset", ["moons", "digits", "multigauss"])
def test_eval_losses_agree_with_a_float64_forward(dataset):
    trainer = Trainer(config(dataset=dataset, hidden=[16]))
    drive(trainer, 100)
    ev, _ = trainer.evaluate(with_grid=False)
    net, data = trainer.net, trainer.data
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        exact = net.data_loss(net.forward(x), net.targets(y))
        assert ev[f"{split}_loss"] == pytest.approx(exact, rel=1e-5)
    if dataset != "multigauss":
        p = net.predict(data.x_test)
        right = (
            p.argmax(axis=1) == data.y_test if p.shape[1] > 1 else (p[:, 0] > 0.5) == data.y_test
        )
        assert ev["test_accuracy"] == pytest.approx(right.mean())


def test_a_repeated_eval_at_the_same_step_does_not_feed_the_detectors_twice():
    trainer = Trainer(config(dataset="gauss"))
    _, _, events = drive(trainer, 200)
    assert [e["type"] for e in events] == ["chime"]
    seen = len(trainer.convergence.test_losses), list(trainer.overfit.test)
    again, more = trainer.evaluate()
    assert more == [] and again["step"] == trainer.step
    assert (len(trainer.convergence.test_losses), list(trainer.overfit.test)) == seen


def test_evaluation_comes_at_least_once_an_epoch():
    for overrides in (dict(), dict(dataset="digits", batch_size=32), dict(batch_size=1)):
        trainer = Trainer(config(**overrides))
        assert 1 <= trainer.eval_every <= min(EVAL_EVERY_MAX, trainer.steps_per_epoch)


def test_model_weights_connect_input_i_to_unit_j():
    trainer = Trainer(config(hidden=[3]))
    model = trainer.model()
    assert [layer["activation"] for layer in model["layers"]] == ["tanh", "sigmoid"]
    x = trainer.data.x_test[:5]
    a = x
    for layer in model["layers"]:
        w, b = np.array(layer["weights"]), np.array(layer["biases"])
        assert w.shape == (a.shape[1], len(b))
        z = a @ w + b
        a = np.tanh(z) if layer["activation"] == "tanh" else 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(a, trainer.net.predict(x), rtol=1e-12)


def test_same_config_and_seed_replay_bit_identically_and_another_seed_does_not():
    runs = [
        drive(Trainer(config(optimizer="adam", learning_rate=0.01, seed=seed, noise=0.2)), 600)
        for seed in (7, 7, 8)
    ]
    (a_cols, a_evals, a_events), (b_cols, b_evals, b_events), (c_cols, _, _) = runs
    for name in a_cols:
        if name != "t":  # wall-clock time
            assert np.array_equal(a_cols[name], b_cols[name], equal_nan=True), name
    assert a_evals == b_evals and a_events == b_events
    assert not np.array_equal(a_cols["loss"], c_cols["loss"])


def test_lr_ten_diverges_with_a_reason_and_no_exception():
    trainer = Trainer(config(activation="relu", learning_rate=10))
    columns, _, _ = drive(trainer, 1000)
    assert trainer.step < 1000
    last = columns["loss"][-1]
    assert not math.isfinite(last) or last > 1000 * trainer.initial_loss
