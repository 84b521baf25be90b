"""One run's maths: data, network, optimizer and every per-step metric; no threads, no I/O."""

import base64
import math
import time

import numpy as np

from app import metrics
from app.config import RunConfig
from app.datasets import featurize, grid_points, make_dataset
from app.nn import Network
from app.optim import make_optimizer
from app.steps import StepBuffer

EVAL_EVERY_MAX = 50  # steps between evaluations (at least once an epoch)
GRID_SIZE = 64  # decision-boundary cells per side
DIGIT_PREVIEWS = 32  # test images whose predictions each digits eval carries


class Trainer:
    """Advances one optimizer step at a time and records what the beat and echoes carry."""

    def __init__(self, config: RunConfig, buffer_capacity: int = 4096) -> None:
        self.config = config
        self.data = data = make_dataset(
            config.dataset,
            n_samples=config.n_samples,
            noise=config.noise,
            train_ratio=config.train_ratio,
            seed=config.seed,
            features=config.features,
        )
        spec = data.spec
        self.task, self.n_classes = spec.task, spec.n_classes
        if self.task == "regression":
            output, loss = "linear", "mse"
        elif self.n_classes > 2:
            output, loss = "softmax", "softmax_ce"
        else:
            output, loss = "sigmoid", "bce"
        self.y_train, self.y_test = self._targets(data.y_train), self._targets(data.y_test)
        self.layers = config.layers
        self.net = Network(
            self.layers,
            config.activation,
            output,
            loss,
            config.regularization,
            config.regularization_rate,
            seed=config.seed,
        )
        self.optimizer = make_optimizer(
            config.optimizer, len(self.net.params), config.learning_rate
        )
        self.batch_rng = np.random.default_rng([config.seed, 1])
        n_train = len(data.x_train)
        self.batch_size = min(config.batch_size, n_train)
        self.steps_per_epoch = n_train // self.batch_size
        self.eval_every = min(EVAL_EVERY_MAX, self.steps_per_epoch)
        self.buffer = StepBuffer(self.net.n_layers, buffer_capacity)
        self.step = 0
        self.order = np.arange(n_train)
        self.crescendo = metrics.Crescendo()
        self.convergence = metrics.ConvergenceDetector()
        self.overfit = metrics.OverfitDetector()
        self.initial_loss: float | None = None
        self.grid_x = None
        if spec.is_2d:
            self.grid_x = featurize(grid_points(data.extent, GRID_SIZE), config.features)

    def _targets(self, y: np.ndarray) -> np.ndarray:
        """Labels as the loss wants them: a column (sigmoid, linear) or class indices (softmax)."""
        if self.task == "classification" and self.n_classes > 2:
            return y.astype(np.intp)
        return y.astype(np.float64).reshape(-1, 1)

    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    @property
    def done(self) -> bool:
        return self.step >= self.config.max_steps

    def train_step(self) -> str | None:
        """One forward, backward and update, recorded; returns why it diverged, or None."""
        net, b = self.net, self.batch_size
        i = self.step % self.steps_per_epoch
        if i == 0:
            self.order = self.batch_rng.permutation(len(self.order))
        idx = self.order[i * b : (i + 1) * b]
        yb = self.y_train[idx]
        cache = net.forward(self.data.x_train[idx])
        p = cache.output
        if net.loss_name == "bce":
            loss, entropy = metrics.binary_loss_entropy(cache.logits, p, yb)
            accuracy = float(((p > 0.5) == (yb > 0.5)).mean())
        elif net.loss_name == "softmax_ce":
            loss, entropy = net.data_loss(cache, yb), metrics.entropy(p)
            accuracy = metrics.accuracy(p, yb)
        else:
            loss, entropy, accuracy = net.data_loss(cache, yb), math.nan, math.nan
        grads = net.backward(cache, yb)
        update = self.optimizer.apply(net.params, grads)
        self.step += 1

        buf, n = self.buffer, self.buffer.n
        cols = buf.columns
        cols["step"][n] = self.step
        cols["t"][n] = time.time()
        cols["epoch"][n] = self.step // self.steps_per_epoch
        cols["loss"][n] = loss
        cols["accuracy"][n] = accuracy
        cols["entropy"][n] = entropy
        cols["crescendo"][n] = self.crescendo.update(loss)
        act_rms = cols["act_rms"][n]
        for k, a in enumerate(cache.acts[1:]):
            flat = a.ravel()
            act_rms[k] = flat @ flat / flat.size
        np.sqrt(act_rms, out=act_rms)
        np.sqrt(net.segment_sums(grads * grads), out=cols["grad_norm"][n])
        ratio = cols["update_ratio"][n]
        np.sqrt(
            net.segment_sums(update * update) / net.segment_sums(net.params * net.params), out=ratio
        )
        buf.n = n + 1
        return metrics.diverged(loss, self.initial_loss)

    def evaluate(self, with_grid: bool = True) -> tuple[dict, list[dict]]:
        """Full-data losses, a decision grid or digit predictions, and the events they imply."""
        net, data = self.net, self.data
        train = net.forward(data.x_train)
        test = net.forward(data.x_test)
        train_loss = net.data_loss(train, self.y_train)
        test_loss = net.data_loss(test, self.y_test)
        classify = self.task == "classification"
        ev = {
            "type": "eval",
            "step": self.step,
            "train_loss": train_loss,
            "test_loss": test_loss,
            "train_accuracy": metrics.accuracy(train.output, self.y_train) if classify else None,
            "test_accuracy": metrics.accuracy(test.output, self.y_test) if classify else None,
            "test_entropy": metrics.entropy(test.output) if classify else None,
            "grid": self._grid() if with_grid and self.grid_x is not None else None,
            "confusion": None,
            "predictions": None,
        }
        if classify and self.n_classes > 2:
            predicted = test.output.argmax(axis=1)
            confusion = np.zeros((self.n_classes, self.n_classes), dtype=np.int64)
            np.add.at(confusion, (self.y_test, predicted), 1)
            ev["confusion"] = confusion.tolist()
            ev["predictions"] = predicted[:DIGIT_PREVIEWS].tolist()
        events = []
        if self.initial_loss is None:
            self.initial_loss = train_loss if math.isfinite(train_loss) else None
            if self.initial_loss is not None:
                self.crescendo.start(self.initial_loss)
        reason = self.convergence.observe(train_loss, test_loss, ev["train_accuracy"])
        if reason:
            events.append({"type": "chime", "step": self.step, "reason": reason})
        if self.overfit.observe(train_loss, test_loss):
            events.append(
                {
                    "type": "overfit",
                    "step": self.step,
                    "train_loss": train_loss,
                    "test_loss": test_loss,
                }
            )
        return ev, events

    def _grid(self) -> dict:
        """Class-1 probability (or regression output within the target range) as 0..255 bytes."""
        out = self.net.predict(self.grid_x)[:, 0]
        if self.task == "regression":
            lo, hi = self.data.target_range
            out = (out - lo) / (hi - lo)
        q = np.nan_to_num(np.clip(out, 0.0, 1.0) * 255.0 + 0.5, nan=0.0).astype(np.uint8)
        xmin, xmax, ymin, ymax = self.data.extent
        return {
            "size": GRID_SIZE,
            "x": [xmin, xmax],
            "y": [ymin, ymax],
            "data": base64.b64encode(q.tobytes()).decode("ascii"),
        }

    def model(self) -> dict:
        """Architecture and parameters; weights[i][j] connects input i to unit j."""
        net = self.net
        acts = [net.activation] * (net.n_layers - 1) + [net.output]
        return {
            "step": self.step,
            "layers": [
                {"weights": w.tolist(), "biases": b.tolist(), "activation": a}
                for w, b, a in zip(net.weights, net.biases, acts, strict=True)
            ],
        }
