"""One run's maths: data, network, optimizer and every per-step metric; no threads, no I/O."""

import base64
import math
import time

import numpy as np

from app import metrics
from app.config import RunConfig
from app.datasets import featurize, grid_points
from app.nn import Network
from app.optim import make_optimizer
from app.steps import SCALAR_COLUMNS, StepBuffer

EVAL_EVERY_MAX = 50  # steps between evaluations (at least once an epoch)
GRID_SIZE = 64  # decision-boundary cells per side
DIGIT_PREVIEWS = 32  # test images whose predictions each digits eval carries


class Trainer:
    """Advances one optimizer step at a time and records what the beat and echoes carry."""

    def __init__(self, config: RunConfig, buffer_capacity: int = 4096) -> None:
        self.config = config
        self.data = data = config.make_data()
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
        self.optimizer = make_optimizer(
            config.optimizer, len(net.params), config.learning_rate, update=net.update
        )
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
        self._alarm_above = math.inf  # batch losses at or past this go to metrics.diverged
        self._observed_step = -1  # the step whose eval the detectors last saw

        # Data as columns (see app/nn.py). Evaluation runs train and test together in float32.
        self.classify = self.task == "classification"
        self.cross_entropy = loss != "mse"
        self.log_classes = math.log(max(self.n_classes, 2))
        x_all = np.vstack([data.x_train, data.x_test])
        self.x_cols = net.columns(x_all).astype(np.float32)
        self.t_cols = net.targets(np.concatenate([data.y_train, data.y_test]))
        self.labels = self._labels(np.concatenate([data.y_train, data.y_test]))
        n_all = len(x_all)
        # where each example's target logit sits in the flattened (outputs, examples) logits
        self._target_at = self.labels * n_all + np.arange(n_all) if self.n_classes > 2 else None
        self._eval_bufs = net.allocate(n_all, np.float32)
        # This epoch's shuffled batches: inputs as rows (a batch is a slice, read transposed
        # by the matmul), targets and labels laid out so each batch is contiguous.
        b, spe = self.batch_size, self.steps_per_epoch
        self._x_rows = np.ascontiguousarray(net.columns(data.x_train).T)
        self._t_rows = np.ascontiguousarray(self.t_cols[:, :n_train].T)
        self._epoch_x = self._x_rows  # replaced by each epoch's shuffled rows
        self._epoch_t = np.empty((spe, self._t_rows.shape[1], b))
        self._epoch_labels = np.empty((spe, *self.labels.shape[:-1], b), dtype=self.labels.dtype)
        self._batch_bufs = net.allocate(b)
        self._squares = np.empty_like(net.state)
        self._mean_squares = np.empty(net.n_layers)  # activations' this step
        self._columns = tuple(self.buffer.columns[name] for name in SCALAR_COLUMNS)
        self.grid_cols = None
        if spec.is_2d:
            points = grid_points(data.extent, GRID_SIZE)
            self.grid_cols = net.columns(featurize(points, config.features)).astype(np.float32)

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
        self._epoch_x = self._x_rows.take(order, axis=0)  # (faster than take with out=)
        t = self._t_rows.take(order, axis=0).reshape(spe, b, -1)
        self._epoch_t[...] = t.transpose(0, 2, 1)
        labels = self.labels[..., : self.n_train].take(order, axis=-1)
        self._epoch_labels[...] = labels.reshape(self._epoch_labels.shape)

    def train_step(self) -> str | None:
        """One forward, backward and update, recorded; returns why it diverged, or None."""
        net, b = self.net, self.batch_size
        i = self.step % self.steps_per_epoch
        if i == 0:
            self._shuffle()
        tb = self._epoch_t[i]
        cache = net.forward_columns(self._epoch_x[i * b : (i + 1) * b].T, self._batch_bufs)
        z, p = cache.logits, cache.acts[-1]
        if self.cross_entropy:
            total = float(np.add.reduce(cache.log_norm, axis=None))
            loss = (total - float(np.vdot(tb, z))) / b
            entropy = (total - float(np.vdot(p, z))) / (b * self.log_classes)
            if not 0.0 <= entropy <= 1.0:  # rounding can stray just past the ends
                entropy = min(max(entropy, 0.0), 1.0)
            if self.n_classes > 2:
                right = np.count_nonzero(z.argmax(axis=0) == self._epoch_labels[i])
            else:
                right = np.count_nonzero((z > 0.0) == self._epoch_labels[i])
            accuracy = int(right) / b
        else:
            loss, entropy, accuracy = net.data_loss(cache, tb), math.nan, math.nan
        step, n = self.step + 1, self.buffer.n
        c_step, c_t, c_epoch, c_loss, c_acc, c_ent, c_cresc = self._columns
        rms = self._mean_squares
        for k, h in enumerate(cache.acts[1:-1]):
            a = h[:-1]  # without the ones row
            rms[k] = np.vdot(a, a) / a.size
        rms[-1] = np.vdot(p, p) / p.size

        net.backward(cache, tb)
        self.optimizer.apply(net.params, net.grads)
        self.step = step

        # the echoes' row: act_rms, grad_norm, update_ratio, each per layer
        layers = self.buffer.layers[n]
        sq = self._squares
        np.square(net.state, out=sq)  # params, grads, update
        np.add.reduceat(sq, net.segment_starts, axis=1, out=layers)
        layers[2] /= layers[0]  # |update|^2 / |params|^2
        layers[0] = rms
        np.sqrt(layers, out=layers)
        c_step[n] = step
        c_t[n] = time.time()
        c_epoch[n] = step // self.steps_per_epoch
        c_loss[n] = loss
        c_acc[n] = accuracy
        c_ent[n] = entropy
        c_cresc[n] = self.crescendo.update(loss)
        self.buffer.n = n + 1
        if loss < self._alarm_above:  # the common case, without a call; False for NaN
            return None
        return metrics.diverged(loss, self.initial_loss)

    def evaluate(self, with_grid: bool = True) -> tuple[dict, list[dict]]:
        """Full-data losses, a decision grid or digit predictions, and the events they imply."""
        net, n_train = self.net, self.n_train
        cache = net.forward_columns(self.x_cols, self._eval_bufs)
        z, p, t = cache.logits, cache.acts[-1], self.t_cols
        if self.cross_entropy:
            log_norm = cache.log_norm.reshape(-1)
            target_logit = np.take(z, self._target_at) if self.n_classes > 2 else z[0] * t[0]
            per_example = log_norm - target_logit
        else:
            d = p - t
            per_example = 0.5 * np.add.reduce(d * d, axis=0)
        train_loss = float(np.add.reduce(per_example[:n_train]) / n_train)
        test_loss = float(np.add.reduce(per_example[n_train:]) / (len(per_example) - n_train))
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
            test_z, test_p = z[:, n_train:], p[:, n_train:]
            entropy = np.add.reduce(log_norm[n_train:]) - np.vdot(test_p, test_z)
            entropy /= test_z.shape[1] * self.log_classes
            ev["train_accuracy"] = int(np.count_nonzero(right[:n_train])) / n_train
            ev["test_accuracy"] = int(np.count_nonzero(right[n_train:])) / (len(right) - n_train)
            ev["test_entropy"] = float(min(max(entropy, 0.0), 1.0))
        if self.classify and self.n_classes > 2:
            k = self.n_classes
            pairs = self.labels[n_train:] * k + predicted[n_train:]
            ev["confusion"] = np.bincount(pairs, minlength=k * k).reshape(k, k).tolist()
            ev["predictions"] = predicted[n_train : n_train + DIGIT_PREVIEWS].tolist()
        return ev, self._observe(train_loss, test_loss, ev["train_accuracy"])

    def _observe(
        self, train_loss: float, test_loss: float, train_accuracy: float | None
    ) -> list[dict]:
        """Feed the detectors once per step (a final eval may repeat the last one's step)."""
        if self.step == self._observed_step:
            return []
        self._observed_step = self.step
        if self.initial_loss is None:
            self.initial_loss = train_loss if math.isfinite(train_loss) else None
            if self.initial_loss is not None:
                self.crescendo.start(self.initial_loss)
                self._alarm_above = metrics.DIVERGENCE_FACTOR * max(self.initial_loss, 1e-12)
        events = []
        reason = self.convergence.observe(train_loss, test_loss, train_accuracy)
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
        return events

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
