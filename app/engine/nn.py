"""The network: dense layers over one flat parameter vector, with hand-written backprop.

All parameters live in one contiguous vector, with the gradients and the optimizer's last
update as the other rows of one (3, n_params) array, so an optimizer updates everything in
one operation and per-layer norms of all three are one square and one `reduceat`. Each
layer is one (fan_out, fan_in + 1) block whose last column is the bias. Activations are
kept as columns (units x batch) with a row of ones appended, so a layer is one matmul
with its bias folded in, and sums over classes run along contiguous rows. Imports numpy only.
"""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


def _tanh(v: np.ndarray) -> None:
    np.tanh(v, v)


def _relu(v: np.ndarray) -> None:
    np.maximum(v, 0.0, out=v)


def _sigmoid(v: np.ndarray) -> None:
    v *= 0.5  # 0.5 * (1 + tanh(z / 2)): the tanh form never overflows
    np.tanh(v, v)
    v += 1.0
    v *= 0.5


def _linear(*arrays: np.ndarray) -> None:
    """Identity forward, unit derivative backward: nothing to do."""


def _tanh_back(d: np.ndarray, a: np.ndarray) -> None:
    da = d * a
    da *= a
    d -= da  # d * (1 - a^2)


def _relu_back(d: np.ndarray, a: np.ndarray) -> None:
    d *= a > 0.0


def _sigmoid_back(d: np.ndarray, a: np.ndarray) -> None:
    d *= a - a * a  # d * a(1 - a)


# name -> (activation in place on pre-activations, backprop in place given the activation)
ACTIVATIONS = {
    "relu": (_relu, _relu_back),
    "tanh": (_tanh, _tanh_back),
    "sigmoid": (_sigmoid, _sigmoid_back),
    "linear": (_linear, _linear),
}

# output activation -> the losses it pairs with
OUTPUTS: dict[str, tuple[str, ...]] = {
    "sigmoid": ("bce", "mse"),
    "softmax": ("softmax_ce",),
    "linear": ("mse",),
}
REGULARIZATIONS = ("none", "l1", "l2")


class Cache(NamedTuple):
    """What backward needs, as columns: each layer's input with its ones row, then the output.

    `log_norm` is the output's log-partition per example (softplus of the logit for sigmoid,
    log-sum-exp for softmax, None for linear): cross-entropy and entropy both come from it.
    `peak` is each example's largest logit (softmax only, else None).
    """

    acts: list[np.ndarray]
    logits: np.ndarray
    log_norm: np.ndarray | None
    peak: np.ndarray | None = None

    @property
    def columns(self) -> np.ndarray:
        """The prediction as (outputs, batch)."""
        return self.acts[-1]

    @property
    def output(self) -> np.ndarray:
        """The prediction as (batch, outputs)."""
        return self.acts[-1].T


class Buffers(NamedTuple):
    """Everything a forward pass over n examples writes, allocated once (see `allocate`).

    Writing into these instead of fresh arrays gives the same numbers: each operation is
    the same ufunc or matmul, given somewhere to put its result.
    """

    hidden: list[np.ndarray]  # each hidden layer's activations with the ones row
    logits: np.ndarray  # (outputs, n) float64
    probs: np.ndarray  # (outputs, n) float64
    log_norm: np.ndarray  # (n,) for softmax, (1, n) for sigmoid (unused for linear)
    peak: np.ndarray  # (n,) each column's largest logit (softmax)
    narrow: np.ndarray | None  # (outputs, n) the logits as computed, when dtype is not float64


class Network:
    """A multilayer perceptron whose forward keeps a cache and whose backward fills `grads`."""

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "tanh",
        output: str = "sigmoid",
        loss: str = "bce",
        regularization: str = "none",
        regularization_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {list(ACTIVATIONS)}")
        if loss not in OUTPUTS.get(output, ()):
            raise ValueError(f"output {output!r} does not pair with loss {loss!r}")
        if regularization not in REGULARIZATIONS:
            raise ValueError(f"unknown regularization {regularization!r}")
        self.sizes = [int(n) for n in sizes]
        self.n_layers = len(self.sizes) - 1
        self.activation, self.output, self.loss_name = activation, output, loss
        self.regularization, self.regularization_rate = regularization, float(regularization_rate)
        self._act, self._back = ACTIVATIONS[activation]
        pairs = list(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        n_params = sum((i + 1) * o for i, o in pairs)
        # params, grads and the optimizer's last update side by side: squared in one go
        self.state = np.zeros((3, n_params))
        self.params, self.grads, self.update = self.state
        self.blocks, self.grad_blocks = [], []
        self.weight_mask = np.zeros(n_params)  # 1 where a parameter is a weight, 0 for a bias
        starts, at = [], 0
        for i, o in pairs:
            starts.append(at)
            self.blocks.append(self.params[at : at + (i + 1) * o].reshape(o, i + 1))
            self.grad_blocks.append(self.grads[at : at + (i + 1) * o].reshape(o, i + 1))
            self.weight_mask[at : at + (i + 1) * o].reshape(o, i + 1)[:, :-1] = 1.0
            at += (i + 1) * o
        # weights[k][i, j] connects input i to unit j; biases[k][j] is unit j's bias
        self.weights = [b[:, :-1].T for b in self.blocks]
        self.biases = [b[:, -1] for b in self.blocks]
        self.grad_w = [g[:, :-1].T for g in self.grad_blocks]
        self.grad_b = [g[:, -1] for g in self.grad_blocks]
        self._in_weights_t = [b[:, :-1].T for b in self.blocks]  # without the bias column
        self.segment_starts = np.array(starts, dtype=np.intp)  # one segment per layer
        self._init_weights(np.random.default_rng(seed))

    def _init_weights(self, rng: np.random.Generator) -> None:
        """He initialisation for relu, Xavier/Glorot otherwise; biases start at zero."""
        for w in self.weights:
            fan_in, fan_out = w.shape
            if self.activation == "relu":
                std = np.sqrt(2.0 / fan_in)
            else:
                std = np.sqrt(2.0 / (fan_in + fan_out))
            w[...] = rng.normal(0.0, std, size=w.shape)

    # -- layout helpers ------------------------------------------------------------
    def columns(self, x: np.ndarray) -> np.ndarray:
        """Examples (batch, inputs) as input columns (inputs + 1, batch) with the ones row."""
        xa = np.ones((x.shape[1] + 1, len(x)))
        xa[:-1] = x.T
        return xa

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Labels as target columns shaped like the output: one-hot for softmax."""
        y = np.asarray(y)
        if self.output == "softmax":
            t = np.zeros((self.sizes[-1], len(y)))
            t[y.astype(np.intp), np.arange(len(y))] = 1.0
            return t
        return y.astype(np.float64).reshape(len(y), -1).T.copy()

    def allocate(self, n: int, dtype: type = np.float64) -> Buffers:
        """Reusable buffers for forward passes over n examples: pass to `forward_columns`."""
        k = self.sizes[-1]
        return Buffers(
            hidden=[np.ones((units + 1, n), dtype=dtype) for units in self.sizes[1:-1]],
            logits=np.empty((k, n)),
            probs=np.empty((k, n)),
            log_norm=np.empty((1, n) if self.output == "sigmoid" else n),
            peak=np.empty(n),
            narrow=None if np.dtype(dtype) == np.float64 else np.empty((k, n), dtype=dtype),
        )

    # -- forward -------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> Cache:
        """Every layer's activation, kept for backward; `cache.output` is the prediction."""
        return self.forward_columns(self.columns(np.asarray(x, dtype=np.float64)))

    def forward_columns(self, xa: np.ndarray, bufs: Buffers | None = None) -> Cache:
        """Forward from input columns; `bufs` (from `allocate`) are overwritten if given.

        float32 columns give a float32 pass (evaluation only: twice as fast), with the
        logits promoted to float64 before the output and loss.
        """
        if bufs is None:
            bufs = self.allocate(xa.shape[1], xa.dtype)
        blocks = self.blocks
        if xa.dtype != np.float64:
            blocks = [w.astype(xa.dtype) for w in blocks]
        acts, a = [xa], xa
        for w, h in zip(blocks[:-1], bufs.hidden, strict=True):
            z = h[:-1]
            w.dot(a, z)  # the ndarray method skips np.dot's dispatch
            self._act(z)
            acts.append(h)
            a = h
        z = bufs.logits
        if bufs.narrow is None:
            blocks[-1].dot(a, z)
        else:
            blocks[-1].dot(a, bufs.narrow)
            z[...] = bufs.narrow
        log_norm, peak, p = None, None, bufs.probs
        # reductions take their arguments by position: numpy parses keywords slowly
        if self.output == "sigmoid":
            log_norm = np.logaddexp(0.0, z, bufs.log_norm)  # softplus: log(1 + e^z)
            np.subtract(z, log_norm, p)
            np.exp(p, p)
        elif self.output == "softmax":
            peak = np.maximum.reduce(z, 0, None, bufs.peak)
            np.subtract(z, peak, p)
            np.exp(p, p)
            s = np.add.reduce(p, 0, None, bufs.log_norm)
            p /= s
            log_norm = np.log(s, s)
            log_norm += peak
        else:
            p = z
        acts.append(p)
        return Cache(acts, z, log_norm, peak)

    # -- loss ----------------------------------------------------------------------
    def data_loss(self, cache: Cache, t: np.ndarray) -> float:
        """Mean loss over the batch against target columns `t` (see `targets`)."""
        n = cache.logits.shape[1]
        if cache.log_norm is not None and self.loss_name != "mse":
            # cross-entropy: log-partition minus the target's logit, finite when saturated
            return float((cache.log_norm.sum() - np.vdot(t, cache.logits)) / n)
        d = cache.columns - t
        return float(0.5 * np.vdot(d, d) / n)

    def regularization_loss(self) -> float:
        if self.regularization == "none" or self.regularization_rate == 0.0:
            return 0.0
        w = self.params * self.weight_mask
        if self.regularization == "l1":
            return self.regularization_rate * float(np.abs(w).sum())
        return 0.5 * self.regularization_rate * float(w @ w)

    def loss(self, cache: Cache, t: np.ndarray) -> float:
        """The training objective: data loss plus the regularization penalty."""
        return self.data_loss(cache, t) + self.regularization_loss()

    # -- backward ------------------------------------------------------------------
    def backward(self, cache: Cache, t: np.ndarray) -> np.ndarray:
        """Fill and return the flat gradient of `loss` with respect to `params`."""
        acts = cache.acts
        p = acts[-1]
        n = p.shape[1]
        dz = p - t  # cross-entropy with its matching output, and mse before the output
        if self.loss_name == "mse" and self.output == "sigmoid":
            dz *= p - p * p
        dz *= 1.0 / n
        for k in range(self.n_layers - 1, -1, -1):
            dz.dot(acts[k].T, self.grad_blocks[k])
            if k:
                d = self._in_weights_t[k].dot(dz)
                self._back(d, acts[k][:-1])
                dz = d
        if self.regularization != "none" and self.regularization_rate != 0.0:
            if self.regularization == "l1":
                self.grads += self.regularization_rate * np.sign(self.params) * self.weight_mask
            else:
                self.grads += self.regularization_rate * self.params * self.weight_mask
        return self.grads

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x).output

    def segment_sums(self, v: np.ndarray) -> np.ndarray:
        """Per-layer sums of a vector laid out like `params` (along the last axis if 2-D)."""
        return np.add.reduceat(v, self.segment_starts, axis=-1)
