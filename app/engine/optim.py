"""Optimizers that apply a flat gradient to a flat parameter vector, keeping the update."""

import numpy as np


class Optimizer:
    """Base: `apply` writes this step's change into `self.update` and adds it to the params."""

    def __init__(
        self, n_params: int, learning_rate: float, update: np.ndarray | None = None
    ) -> None:
        self.learning_rate = float(learning_rate)
        self.update = np.zeros(n_params) if update is None else update

    def apply(self, params: np.ndarray, grads: np.ndarray) -> np.ndarray:
        self._compute(grads)
        params += self.update
        return self.update

    def _compute(self, grads: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    def _compute(self, grads: np.ndarray) -> None:
        np.multiply(grads, -self.learning_rate, self.update)


class Momentum(Optimizer):
    """Heavy-ball momentum: the update itself is the velocity."""

    def __init__(
        self,
        n_params: int,
        learning_rate: float,
        update: np.ndarray | None = None,
        beta: float = 0.9,
    ) -> None:
        super().__init__(n_params, learning_rate, update)
        self.beta = beta

    def _compute(self, grads: np.ndarray) -> None:
        self.update *= self.beta
        self.update -= self.learning_rate * grads


class Adam(Optimizer):
    def __init__(
        self,
        n_params: int,
        learning_rate: float,
        update: np.ndarray | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(n_params, learning_rate, update)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = np.zeros(n_params)
        self.v = np.zeros(n_params)
        self.t = 0

    def _compute(self, grads: np.ndarray) -> None:
        """Algorithm 1 of Kingma & Ba: eps is added to the bias-corrected root of v."""
        self.t += 1
        self.m *= self.beta1
        self.m += (1.0 - self.beta1) * grads
        self.v *= self.beta2
        self.v += (1.0 - self.beta2) * (grads * grads)
        u = self.update
        np.multiply(self.v, 1.0 / (1.0 - self.beta2**self.t), out=u)
        np.sqrt(u, out=u)
        u += self.eps
        np.divide(self.m, u, out=u)
        u *= -self.learning_rate / (1.0 - self.beta1**self.t)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def make_optimizer(
    name: str, n_params: int, learning_rate: float, update: np.ndarray | None = None
) -> Optimizer:
    """`update`, if given, is the (zeroed) vector the optimizer writes each step's change into."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {list(OPTIMIZERS)}")
    return OPTIMIZERS[name](n_params, learning_rate, update)
