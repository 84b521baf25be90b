"""The network: dense layers over one flat parameter vector, with hand-written backprop.

All weights live in one contiguous vector (weights of every layer first, then every
bias), and gradients in a twin vector, so an optimizer updates everything in one
operation and per-layer norms are a single `reduceat`. Imports numpy only.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

ActivationFn = Callable[[np.ndarray], np.ndarray]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # tanh form never overflows


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# name -> (activation, derivative expressed through the activation's output)
ACTIVATIONS: dict[str, tuple[ActivationFn, ActivationFn]] = {
    "relu": (lambda z: np.maximum(z, 0.0), lambda a: (a > 0.0).astype(a.dtype)),
    "tanh": (np.tanh, lambda a: 1.0 - a * a),
    "sigmoid": (_sigmoid, lambda a: a * (1.0 - a)),
    "linear": (lambda z: z, lambda a: np.ones_like(a)),
}

# output activation -> the losses it pairs with
OUTPUTS: dict[str, tuple[str, ...]] = {
    "sigmoid": ("bce", "mse"),
    "softmax": ("softmax_ce",),
    "linear": ("mse",),
}
REGULARIZATIONS = ("none", "l1", "l2")


class Cache(NamedTuple):
    """What backward needs: every layer's activation (input first) and the output logits."""

    acts: list[np.ndarray]
    logits: np.ndarray

    @property
    def output(self) -> np.ndarray:
        return self.acts[-1]


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


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
        self.activation, self.output, self.loss_name = activation, output, loss
        self.regularization, self.regularization_rate = regularization, float(regularization_rate)
        self._act, self._dact = ACTIVATIONS[activation]
        pairs = list(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        n_weights = sum(i * o for i, o in pairs)
        self.n_weights = n_weights
        self.params = np.zeros(n_weights + sum(o for _, o in pairs))
        self.grads = np.zeros_like(self.params)
        self.weights, self.biases, self.grad_w, self.grad_b = [], [], [], []
        starts, w_at, b_at = [], 0, n_weights
        for i, o in pairs:
            starts.append(w_at)
            self.weights.append(self.params[w_at : w_at + i * o].reshape(i, o))
            self.grad_w.append(self.grads[w_at : w_at + i * o].reshape(i, o))
            w_at += i * o
        for _, o in pairs:
            starts.append(b_at)
            self.biases.append(self.params[b_at : b_at + o])
            self.grad_b.append(self.grads[b_at : b_at + o])
            b_at += o
        # reduceat offsets: one segment per layer's weights, then one per layer's biases
        self.segment_starts = np.array(starts, dtype=np.intp)
        self._init_weights(np.random.default_rng(seed))

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def _init_weights(self, rng: np.random.Generator) -> None:
        """He initialisation for relu, Xavier/Glorot otherwise; biases start at zero."""
        for w in self.weights:
            fan_in, fan_out = w.shape
            if self.activation == "relu":
                std = np.sqrt(2.0 / fan_in)
            else:
                std = np.sqrt(2.0 / (fan_in + fan_out))
            w[...] = rng.normal(0.0, std, size=w.shape)

    def forward(self, x: np.ndarray) -> Cache:
        """Every layer's activation, kept for backward; `cache.output` is the prediction."""
        acts = [x]
        a = x
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            z = a @ w
            z += b
            a = self._act(z)
            acts.append(a)
        z = a @ self.weights[-1]
        z += self.biases[-1]
        acts.append(_OUTPUT_FNS[self.output](z))
        return Cache(acts, z)

    def data_loss(self, cache: Cache, y: np.ndarray) -> float:
        """Mean loss over the batch, computed from the logits so it stays finite when saturated."""
        p, z, n = cache.output, cache.logits, len(cache.logits)
        if self.loss_name == "bce":
            zf, yf = z.ravel(), y.ravel()
            return float((_softplus(zf).sum() - yf @ zf) / n)
        if self.loss_name == "softmax_ce":
            m = z.max(axis=1)
            lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
            return float((lse - z[np.arange(n), y]).sum() / n)
        d = (p - y).ravel()
        return float(0.5 * (d @ d) / n)

    def regularization_loss(self) -> float:
        if self.regularization == "none" or self.regularization_rate == 0.0:
            return 0.0
        w = self.params[: self.n_weights]
        if self.regularization == "l1":
            return self.regularization_rate * float(np.abs(w).sum())
        return 0.5 * self.regularization_rate * float(w @ w)

    def loss(self, cache: Cache, y: np.ndarray) -> float:
        """The training objective: data loss plus the regularization penalty."""
        return self.data_loss(cache, y) + self.regularization_loss()

    def backward(self, cache: Cache, y: np.ndarray) -> np.ndarray:
        """Fill and return the flat gradient of `loss` with respect to `params`."""
        acts = cache.acts
        p, n = acts[-1], len(acts[-1])
        if self.loss_name == "softmax_ce":
            dz = p.copy()
            dz[np.arange(n), y] -= 1.0
        else:
            dz = p - y
            if self.loss_name == "mse" and self.output == "sigmoid":
                dz *= p * (1.0 - p)
        dz /= n
        for k in range(self.n_layers - 1, -1, -1):
            np.dot(acts[k].T, dz, out=self.grad_w[k])
            np.sum(dz, axis=0, out=self.grad_b[k])
            if k:
                dz = (dz @ self.weights[k].T) * self._dact(acts[k])
        if self.regularization != "none" and self.regularization_rate != 0.0:
            w, g = self.params[: self.n_weights], self.grads[: self.n_weights]
            if self.regularization == "l1":
                g += self.regularization_rate * np.sign(w)
            else:
                g += self.regularization_rate * w
        return self.grads

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x).output

    def segment_sums(self, v: np.ndarray) -> np.ndarray:
        """Per-layer sums of a flat vector laid out like `params` (weights and biases together)."""
        s = np.add.reduceat(v, self.segment_starts)
        return s[: self.n_layers] + s[self.n_layers :]


_OUTPUT_FNS: dict[str, ActivationFn] = {
    "sigmoid": _sigmoid,
    "softmax": _softmax,
    "linear": lambda z: z,
}
