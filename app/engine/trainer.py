"""One run's maths: data, network, optimizer and every per-step metric; no threads, no I/O."""

import math
import time

import numpy as np

from app.engine import metrics
from app.engine.config import LIVE_FIELDS, RunConfig
from app.engine.datasets import featurize, grid_points
from app.engine.detectors import (
    ConvergenceDetector,
    DivergenceDetector,
    Evaluation,
    PlateauDetector,
)
from app.engine.grid import GRID_SIZE, grid_message
from app.engine.nn import Network
from app.engine.optim import make_optimizer
from app.engine.steps import SCALAR_COLUMNS, StepBuffer
from app.engine.tables import Table

EVAL_EVERY_MAX = 50  # steps between evaluations (at least once an epoch)
DIGIT_PREVIEWS = 32  # test images whose predictions each digits eval carries


class Trainer:
    """Advances one optimizer step at a time and records what the beat and echoes carry."""

    def __init__(
        self, config: RunConfig, buffer_capacity: int = 4096, table: Table | None = None
    ) -> None:
        self.config = config
        self.data = data = config.make_data(table)
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
        self.n_train = len(data.x_train)
        self.buffer = StepBuffer(net.n_layers, buffer_capacity, finish=self._finish_echoes)
        self._rms = np.empty((buffer_capacity, net.n_layers))  # act_rms squared, per step
        self.step = 0
        self._epoch_start = (0, 0)  # (step, epoch) where the current batch size took over
        self.crescendo = metrics.Crescendo()
        self.overfit = metrics.OverfitDetector()
        self.prior_loss = prior_loss(data.y_train, self.task, self.n_classes)
        self.convergence: ConvergenceDetector | None = None  # set by the first evaluation
        self.divergence: DivergenceDetector | None = None
        self.plateau: PlateauDetector | None = None
        self.initial_loss: float | None = None
        self._alarm_above = math.inf  # batch losses at or past this go to metrics.diverged
        self._observed_step = -1  # the step whose eval the detectors last saw

        self.classify = self.task == "classification"
        self.cross_entropy = loss != "mse"
        self._layout_evaluation()
        self._layout_batches(config.batch_size)
        self._columns = tuple(self.buffer.columns[name] for name in SCALAR_COLUMNS)

    def _layout_evaluation(self) -> None:
        """Train and test together as float32 columns (see engine/nn.py), and the grid's."""
        data, net, n_train = self.data, self.net, self.n_train
        x_all = np.vstack([data.x_train, data.x_test])
        self.x_cols = net.columns(x_all).astype(np.float32)
        self.t_cols = net.targets(np.concatenate([data.y_train, data.y_test]))
        self.labels = self._labels(np.concatenate([data.y_train, data.y_test]))
        self.n_test = len(x_all) - n_train
        n_all = len(x_all)
        # where each example's target logit sits in the flattened (outputs, examples) logits
        self._target_at = self.labels * n_all + np.arange(n_all) if self.n_classes > 2 else None
        self._eval_bufs = net.allocate(n_all, np.float32)
        self._per_example = np.empty(n_all)  # each example's loss
        self._target_logit = np.empty(n_all)
        self._diff = np.empty_like(self.t_cols)  # regression: output minus target
        self._x_rows = np.ascontiguousarray(net.columns(data.x_train).T)
        self._t_rows = np.ascontiguousarray(self.t_cols[:, :n_train].T)
        self.grid_cols = None
        if data.spec.is_2d:
            points = grid_points(data.extent, GRID_SIZE)
            features = featurize(points, self.config.features)
            self.grid_cols = net.columns(features).astype(np.float32)
            self._grid_bufs = net.allocate(self.grid_cols.shape[1], np.float32)
        self._squares = np.empty_like(net.state)

    def _layout_batches(self, batch_size: int) -> None:
        """This epoch's shuffled batches: inputs as rows (a batch is a slice, read transposed
        by the matmul), targets and labels laid out so each batch is contiguous."""
        self.batch_size = b = min(batch_size, self.n_train)
        self.steps_per_epoch = spe = self.n_train // b
        self.eval_every = min(EVAL_EVERY_MAX, spe)
        self._epoch_x = np.empty((spe * b, self._x_rows.shape[1]))  # this epoch's rows
        self._epoch_t = np.empty((spe, self._t_rows.shape[1], b))
        self._epoch_labels = np.empty((spe, *self.labels.shape[:-1], b), dtype=self.labels.dtype)
        self._batch_bufs = self.net.allocate(b)

    def apply_changes(self, changes: dict) -> dict:
        """Turn live knobs between two steps; returns notes on what the change implies.

        The same changes at the same steps give bit-identical runs: nothing here draws
        from a random generator. A new optimizer starts with fresh state (no momentum,
        no Adam moments); a new batch size starts a fresh epoch.
        """
        unknown = set(changes) - set(LIVE_FIELDS)
        if unknown:
            raise ValueError(f"not a live setting: {', '.join(sorted(unknown))}")
        old = self.config
        self.config = new = RunConfig.model_validate({**old.model_dump(), **changes})
        notes = {}
        net = self.net
        if new.optimizer != old.optimizer:
            net.update[...] = 0.0
            self.optimizer = make_optimizer(
                new.optimizer, len(net.params), new.learning_rate, update=net.update
            )
            notes["optimizer"] = f"{new.optimizer} starts with fresh state"
        self.optimizer.learning_rate = float(new.learning_rate)
        net.regularization = new.regularization
        net.regularization_rate = float(new.regularization_rate)
        if new.batch_size != old.batch_size:
            mid_epoch = (self.step - self._epoch_start[0]) % self.steps_per_epoch > 0
            epoch = self.epoch + int(mid_epoch)
            self._epoch_start = (self.step, epoch)
            self._layout_batches(new.batch_size)
            notes["batch_size"] = f"a fresh epoch starts with batches of {self.batch_size}"
        return notes

    def _labels(self, y: np.ndarray) -> np.ndarray:
        """What accuracy compares against: class indices (softmax) or a row of booleans."""
        if self.n_classes > 2:
            return y.astype(np.intp)
        return (y > 0.5).reshape(1, -1)

    @property
    def epoch(self) -> int:
        step0, epoch0 = self._epoch_start
        return epoch0 + (self.step - step0) // self.steps_per_epoch

    @property
    def done(self) -> bool:
        return self.step >= self.config.max_steps

    def _shuffle(self) -> None:
        """Draw this epoch's order and lay its batches out contiguously."""
        b, spe = self.batch_size, self.steps_per_epoch
        order = self.batch_rng.permutation(self.n_train)[: spe * b]
        # mode="clip" (the indices are all in range) lets take write straight into out=
        self._x_rows.take(order, axis=0, out=self._epoch_x, mode="clip")
        t = self._t_rows.take(order, axis=0).reshape(spe, b, -1)
        self._epoch_t[...] = t.transpose(0, 2, 1)
        labels = self.labels[..., : self.n_train].take(order, axis=-1)
        self._epoch_labels[...] = labels.reshape(self._epoch_labels.shape)

    def train_step(self) -> str | None:
        """One forward, backward and update, recorded; returns why it diverged, or None."""
        net, b = self.net, self.batch_size
        step0, epoch0 = self._epoch_start
        i = (self.step - step0) % self.steps_per_epoch
        if i == 0:
            self._shuffle()
        tb = self._epoch_t[i]
        cache = net.forward_columns(self._epoch_x[i * b : (i + 1) * b].T, self._batch_bufs)
        z, p = cache.logits, cache.acts[-1]
        if self.cross_entropy:
            total = float(np.add.reduce(cache.log_norm, None))
            loss = metrics.cross_entropy(total, z, tb, b)
            entropy = metrics.predictive_entropy(total, z, p, b, self.n_classes)
            accuracy = metrics.count_correct(z, self._epoch_labels[i]) / b
        else:
            loss, entropy, accuracy = net.data_loss(cache, tb), math.nan, math.nan
        step, n = self.step + 1, self.buffer.n
        c_step, c_t, c_epoch, c_loss, c_acc, c_ent, c_cresc = self._columns
        rms = self._rms[n]
        for k, h in enumerate(cache.acts[1:-1]):
            a = h[:-1]  # without the ones row
            rms[k] = metrics.inner(a, a) / a.size
        rms[-1] = metrics.inner(p, p) / p.size

        net.backward(cache, tb)
        self.optimizer.apply(net.params, net.grads)
        self.step = step

        # the echoes' sums of squares (params, grads, update), per layer: see _finish_echoes
        sq = self._squares
        np.square(net.state, sq)
        np.add.reduceat(sq, net.segment_starts, 1, None, self.buffer.layers[n])
        c_step[n] = step
        c_t[n] = time.time()
        c_epoch[n] = epoch0 + (step - step0) // self.steps_per_epoch
        c_loss[n] = loss
        c_acc[n] = accuracy
        c_ent[n] = entropy
        c_cresc[n] = self.crescendo.update(loss)
        self.buffer.n = n + 1
        if loss < self._alarm_above:  # the common case, without a call; False for NaN
            return None
        return metrics.diverged(loss, self.initial_loss)

    def _finish_echoes(self, n: int) -> None:
        """The echoes of the first n rows, from each step's sums of squares, in one go:
        act_rms, grad_norm and update_ratio = |update| / |params|, per layer."""
        layers = self.buffer.layers[:n]
        layers[:, 2] /= layers[:, 0]
        layers[:, 0] = self._rms[:n]
        np.sqrt(layers, out=layers)

    def evaluate(self, with_grid: bool = True) -> tuple[dict, list[dict]]:
        """Full-data losses, a decision grid or digit predictions, and the events they imply."""
        net, n_train = self.net, self.n_train
        cache = net.forward_columns(self.x_cols, self._eval_bufs)
        z, p, t = cache.logits, cache.acts[-1], self.t_cols
        per_example = self._per_example
        if self.cross_entropy:
            log_norm = cache.log_norm.reshape(-1)
            target_logit = self._target_logit
            if self.n_classes > 2:
                z.take(self._target_at, None, target_logit, "clip")  # all in range
            else:
                np.multiply(z[0], t[0], out=target_logit)
            np.subtract(log_norm, target_logit, out=per_example)
        else:
            d = np.subtract(p, t, out=self._diff)
            np.multiply(d, d, out=d)
            np.add.reduce(d, axis=0, out=per_example)
            per_example *= 0.5
        train_loss = float(np.add.reduce(per_example[:n_train]) / n_train)
        test_loss = float(np.add.reduce(per_example[n_train:]) / self.n_test)
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
            train, test = slice(0, n_train), slice(n_train, None)
            n_test = self.n_test
            answers = metrics.predicted(z, cache.peak)  # class indices, or a row of booleans
            right = answers == self.labels
            ev["train_accuracy"] = int(np.count_nonzero(right[..., train])) / n_train
            ev["test_accuracy"] = int(np.count_nonzero(right[..., test])) / n_test
            test_sum = float(np.add.reduce(log_norm[test]))
            ev["test_entropy"] = metrics.predictive_entropy(
                test_sum, z[:, test], p[:, test], n_test, self.n_classes
            )
            if self.n_classes > 2 or self.grid_cols is None:
                # beyond two inputs there is no heatmap: a confusion matrix shows the classes
                k = max(self.n_classes, 2)
                predicted = answers.reshape(-1)[test].astype(np.intp, copy=False)
                truth = self.labels.reshape(-1)[test].astype(np.intp, copy=False)
                pairs = truth * k + predicted
                ev["confusion"] = np.bincount(pairs, minlength=k * k).reshape(k, k).tolist()
                ev["predictions"] = predicted[:DIGIT_PREVIEWS].tolist()
        return ev, self._observe(ev)

    def _observe(self, ev: dict) -> list[dict]:
        """Feed the detectors once per step (a final eval may repeat the last one's step).

        An `alarm` among the events means the run diverged and must end.
        """
        if self.step == self._observed_step:
            return []
        self._observed_step = self.step
        e = Evaluation(**{k: ev[k] for k in Evaluation.__dataclass_fields__})
        train_loss, test_loss = e.train_loss, e.test_loss
        if self.initial_loss is None:
            self.initial_loss = train_loss if math.isfinite(train_loss) else None
            if self.initial_loss is None:
                return []
            self.crescendo.start(self.initial_loss)
            self._alarm_above = metrics.DIVERGENCE_FACTOR * max(self.initial_loss, 1e-12)
            reference = max(self.initial_loss, self.prior_loss)
            self.convergence = ConvergenceDetector(reference)
            self.divergence = DivergenceDetector(reference, after_step=self.steps_per_epoch)
            self.plateau = PlateauDetector(reference, self.classify)
            return []
        events = []
        reason = self.divergence.observe(e) or metrics.diverged(train_loss, self.initial_loss)
        if reason:
            return [{"type": "alarm", "step": self.step, "reason": reason}]
        if reason := self.convergence.observe(e):
            events.append({"type": "chime", "step": self.step, "reason": reason})
        if kind := self.plateau.observe(e):
            events.append(plateau_event(kind, e, self.plateau))
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
        out = self.net.forward_columns(self.grid_cols, self._grid_bufs).columns[0]
        if self.task == "regression":
            lo, hi = self.data.target_range
            out = (out - lo) / (hi - lo)
        q = np.nan_to_num(np.clip(out, 0.0, 1.0) * 255.0 + 0.5, nan=0.0).astype(np.uint8)
        return grid_message(q.reshape(GRID_SIZE, GRID_SIZE), self.data.extent)

    def model(self) -> dict:
        """Architecture and parameters; weights[i][j] connects input i to unit j."""
        net = self.net
        acts = [net.activation] * (net.n_layers - 1) + [net.output]
        return {
            "step": self.step,
            "loss": net.loss_name,
            "layers": [
                {"weights": w.tolist(), "biases": b.tolist(), "activation": a}
                for w, b, a in zip(net.weights, net.biases, acts, strict=True)
            ],
        }


PLATEAU_MESSAGE = "stuck: more capacity or a higher learning rate may help"


def plateau_event(kind: str, ev: Evaluation, detector: PlateauDetector) -> dict:
    """A plateau begins (with its level and the advice shown) or ends."""
    event = {"type": kind, "step": ev.step, "train_loss": ev.train_loss}
    if kind == "plateau":
        event.update(level=detector.level, entropy=ev.test_entropy, message=PLATEAU_MESSAGE)
    return event


def prior_loss(y: np.ndarray, task: str, n_classes: int) -> float:
    """The loss of knowing nothing: predicting the training set's class shares (or mean)."""
    if task == "regression":
        return float(0.5 * np.var(y))
    if n_classes > 2:
        shares = np.bincount(y.astype(np.intp), minlength=n_classes) / len(y)
    else:
        p = float(np.mean(y > 0.5))
        shares = np.array([p, 1.0 - p])
    shares = shares[shares > 0]
    return float(-(shares * np.log(shares)).sum())
