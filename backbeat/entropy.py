"""Mean normalised predictive entropy from logits or probabilities, torch or numpy alike."""

import math

import numpy as np


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


class Scaled:
    """A 0-d tensor times a constant, turned into a number (`float`) only when it is read:
    by the sender thread, so training neither waits for a device nor pays for the division."""

    __slots__ = ("scale", "value")

    def __init__(self, value, scale: float):
        self.value, self.scale = value, scale

    def __float__(self) -> float:
        return float(self.value) * self.scale


def entropy_of(logits=None, probs=None) -> float:
    """0 is certain, 1 a uniform guess; one output column means a sigmoid (binary) head."""
    return float(entropy_lazy(logits, probs))


def entropy_lazy(logits=None, probs=None):
    """As `entropy_of`, but a torch input gives a `Scaled` 0-d tensor on its device (read it
    later). Three tensor operations for a softmax head: softmax, entr, sum."""
    x = logits if logits is not None else probs
    if _is_torch(x):
        import torch

        x = x.detach()  # what follows builds no graph
        if x.ndim != 2:
            x = x.reshape(-1, x.shape[-1] if x.ndim > 1 else 1)
        rows, k = x.shape
        entr = torch.special.entr
        if k == 1:
            p = torch.sigmoid(x) if logits is not None else x
            return Scaled((entr(p) + entr(1 - p)).sum(), 1.0 / (rows * math.log(2.0)))
        p = torch.softmax(x, 1) if logits is not None else x
        return Scaled(entr(p).sum(), 1.0 / (rows * math.log(k)))
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(-1, x.shape[-1] if x.ndim > 1 else 1)
    if x.shape[1] == 1:
        p = 1 / (1 + np.exp(-x)) if logits is not None else x
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return float((-(p * np.log(p) + (1 - p) * np.log1p(-p))).mean() / math.log(2.0))
    if logits is not None:
        z = x - x.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    else:
        logp = np.log(np.clip(x, 1e-12, None))
    return float(-(np.exp(logp) * logp).sum(1).mean() / math.log(x.shape[1]))
