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
        self.layers = config.layers
        self.net = net = Network(
            self.layers,
            config.activation,
            output,
            loss,
            config.regularization,
            config.regularization_rate,
            seed=config.seed,
        )
        self.optimizer = make_optimizer(config.optimizer, len(net.params), config.learning_rate)
        self.batch_rng = np.random.default_rng([config.seed, 1])
        self.n_train = n_train = len(data.x_train)
        self.batch_size = min(config.batch_size, n_train)
        self.steps_per_epoch = n_train // self.batch_size
        self.eval_every = min(EVAL_EVERY_MAX, self.steps_per_epoch)
        self.buffer = StepBuffer(net.n_layers, buffer_capacity)
        self.step = 0
        self.crescendo = metrics.Crescendo()
        self.convergence = metrics.ConvergenceDetector()
        self.overfit = metrics.OverfitDetector()
        self.initial_loss: float | None = None

        # Data as columns (see app/nn.py); train and test side by side for one eval forward.
        self.classify = self.task == "classification"
        self.cross_entropy = loss != "mse"
        self.log_classes = math.log(max(self.n_classes, 2))
        self.x_cols = net.columns(np.vstack([data.x_train, data.x_test]))
        self.t_cols = net.targets(np.concatenate([data.y_train, data.y_test]))
        self.labels = self._labels(np.concatenate([data.y_train, data.y_test]))
        self._eval_bufs = net.allocate(self.x_cols.shape[1])
        # This epoch's shuffled batches, each contiguous: [batch index, row, example].
        b, spe = self.batch_size, self.steps_per_epoch
        self._epoch_x = np.empty((spe, self.x_cols.shape[0], b))
        self._epoch_t = np.empty((spe, self.t_cols.shape[0], b))
        self._epoch_labels = np.empty((spe, *self.labels.shape[:-1], b), dtype=self.labels.dtype)
        self._batch_bufs = net.allocate(b)
        self._squares = np.empty((3, len(net.params)))
        self.grid_cols = None
        if spec.is_2d:
            points = grid_points(data.extent, GRID_SIZE)
            self.grid_cols = net.columns(featurize(points, config.features))

    def _labels(self, y: np.ndarray) -> np.ndarray:
        """What accuracy compares against: class indices (softmax) or a row of booleans."""
        if self.n_classes > 2:
            return y.astype(np.intp)
        return (y > 0.5).reshape(1, -1)

    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    @property
    def done(self) -> bool:
        return self.step >= self.config.max_steps

    def _shuffle(self) -> None:
        """Draw this epoch's order and lay its batches out contiguously."""
        b, spe = self.batch_size, self.steps_per_epoch
        order = self.batch_rng.permutation(self.n_train)[: spe * b]
        for src, dst in (
            (self.x_cols, self._epoch_x),
            (self.t_cols, self._epoch_t),
            (self.labels, self._epoch_labels),
        ):
            taken = np.take(src, order, axis=-1)
            dst[...] = np.moveaxis(taken.reshape(*taken.shape[:-1], spe, b), -2, 0)

    def train_step(self) -> str | None:
        """One forward, backward and update, recorded; returns why it diverged, or None."""
        net, b = self.net, self.batch_size
        i = self.step % self.steps_per_epoch
        if i == 0:
            self._shuffle()
        tb = self._epoch_t[i]
        cache = net.forward_columns(self._epoch_x[i], self._batch_bufs)
        z, p = cache.logits, cache.acts[-1]
        if self.cross_entropy:
            total = cache.log_norm.sum()
            loss = float((total - np.vdot(tb, z)) / b)
            entropy = float((total - np.vdot(p, z)) / (b * self.log_classes))
            if self.n_classes > 2:
                right = np.count_nonzero(z.argmax(axis=0) == self._epoch_labels[i])
            else:
                right = np.count_nonzero((z > 0.0) == self._epoch_labels[i])
            accuracy = right / b
        else:
            loss, entropy, accuracy = net.data_loss(cache, tb), math.nan, math.nan
        grads = net.backward(cache, tb)
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
        for k, a in enumerate(cache.acts[1:-1]):
            act_rms[k] = np.vdot(a[:-1], a[:-1]) / (a.size - b)
        act_rms[-1] = np.vdot(p, p) / p.size
        np.sqrt(act_rms, out=act_rms)
        sq = self._squares
        np.square(net.state, out=sq[:2])  # params, grads
        np.square(update, out=sq[2])
        per_layer = np.add.reduceat(sq, net.segment_starts, axis=1)
        np.sqrt(per_layer[1], out=cols["grad_norm"][n])
        ratio = cols["update_ratio"][n]
        np.divide(per_layer[2], per_layer[0], out=ratio)
        np.sqrt(ratio, out=ratio)
        buf.n = n + 1
        return metrics.diverged(loss, self.initial_loss)

    def evaluate(self, with_grid: bool = True) -> tuple[dict, list[dict]]:
        """Full-data losses, a decision grid or digit predictions, and the events they imply."""
        net, n_train = self.net, self.n_train
        cache = net.forward_columns(self.x_cols, self._eval_bufs)
        z, p, t = cache.logits, cache.acts[-1], self.t_cols
        if self.cross_entropy:
            log_norm = cache.log_norm.reshape(-1)
            per_example = log_norm - (t * z).sum(axis=0)
        else:
            d = p - t
            per_example = 0.5 * (d * d).sum(axis=0)
        train_loss = float(per_example[:n_train].mean())
        test_loss = float(per_example[n_train:].mean())
        ev = {
            "type": "eval",
            "step": self.step,
            "train_loss": train_loss,
            "test_loss": test_loss,
            "train_accuracy": None,
            "test_accuracy": None,
            "test_entropy": None,
            "grid": self._grid() if with_grid and self.grid_cols is not None else None,
            "confusion": None,
            "predictions": None,
        }
        if self.classify:
            if self.n_classes > 2:
                predicted = z.argmax(axis=0)
                right = predicted == self.labels
            else:
                right = ((z > 0.0) == self.labels).reshape(-1)
            entropy = (log_norm - (p * z).sum(axis=0))[n_train:].mean() / self.log_classes
            ev["train_accuracy"] = float(right[:n_train].mean())
            ev["test_accuracy"] = float(right[n_train:].mean())
            ev["test_entropy"] = float(min(max(entropy, 0.0), 1.0))
        if self.classify and self.n_classes > 2:
            confusion = np.zeros((self.n_classes, self.n_classes), dtype=np.int64)
            np.add.at(confusion, (self.labels[n_train:], predicted[n_train:]), 1)
            ev["confusion"] = confusion.tolist()
            ev["predictions"] = predicted[n_train : n_train + DIGIT_PREVIEWS].tolist()
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
        out = self.net.forward_columns(self.grid_cols).columns[0]
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
