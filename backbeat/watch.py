"""Per-layer gradient norms, update ratios and activation RMS of a PyTorch model.

A layer is a module that owns parameters directly, in forward order (the first forward
pass records it). Its gradient norm is the L2 norm over all of its own parameters'
gradients, weights and biases together, as the numpy engine folds them. With the
optimizer given, norms are taken in its step pre-hook (after backward, before the
step) and update ratios |Δθ| / |θ| in its post-hook; without it, when `log` is called.

Only steps the cadence arms are measured (`arm`); the optimizer's hooks and the forward
hooks for activations are registered only then, so an unmeasured step runs none of them.
A measurement stays a tensor (`Later`): the sender thread turns it into numbers, so
training never waits for a GPU to hand values back.
"""

import math
import time

import torch


class Later:
    """Per-parameter norms on the model's device, folded into per-layer values when read."""

    __slots__ = ("kind", "norms", "owners", "width")

    def __init__(self, kind: str, norms, owners: list[int], width: int):
        """`norms`: a tensor, or a sequence of 0-d tensors (stacked here, in the sender thread)."""
        self.kind, self.norms, self.owners, self.width = kind, norms, owners, width

    def resolve(self) -> list[float]:
        norms = self.norms
        values = (torch.stack(norms) if isinstance(norms, list | tuple) else norms).tolist()
        if self.kind == "rms":  # already one value per layer
            return values
        if self.kind == "grad":
            squares = [0.0] * self.width
            for k, n in zip(self.owners, values, strict=True):
                squares[k] += n * n
            return [math.sqrt(q) for q in squares]
        half = len(self.owners)  # "ratio": |Δθ| of every parameter, then |θ|
        delta, size = [0.0] * self.width, [0.0] * self.width
        for k, d, b in zip(self.owners, values[:half], values[half:], strict=True):
            delta[k] += d * d
            size[k] += b * b
        return [math.sqrt(d / max(b, 1e-24)) for d, b in zip(delta, size, strict=True)]


class TorchWatch:
    """Hooks on one model (and optionally its optimizer); `take` hands over the last values."""

    def __init__(self, model: torch.nn.Module, optimizer=None, activations: bool = False):
        names = {m: n or type(m).__name__ for n, m in model.named_modules()}
        owners = [m for m in model.modules() if next(m.parameters(recurse=False), None) is not None]
        self.modules = owners
        self.names = [names[m] for m in owners]
        self.params = [[p for p in m.parameters(recurse=False) if p.requires_grad] for m in owners]
        self.sizes: list[int] | None = None
        self.ordered = False
        self.activations = activations
        self.armed = False  # measure the coming step (the run's cadence decides: `arm`)
        self.spent = 0.0  # s spent measuring in hooks since the last `take`
        self.act: dict[int, torch.Tensor] = {}
        self.grad_norm: Later | None = None
        self.update_ratio: Later | None = None
        self._before: list[torch.Tensor] | None = None
        self._seen: list[int] = []
        self._order: list[int] = list(range(len(owners)))
        self._ordering = [m.register_forward_hook(self._forward(i)) for i, m in enumerate(owners)]
        self._hooks: list = []  # the measuring hooks, there only while armed
        self._index_params()
        self.optimizer = optimizer
        self.arm(True)  # the first step is always measured

    def arm(self, on: bool) -> None:
        """Measure the coming step, or not. The optimizer's hooks (and the forward hooks for
        activations) are registered only while armed: an unmeasured step runs none of ours."""
        on = bool(on)
        if on == self.armed:
            return
        self.armed = on
        if not on:
            for h in self._hooks:
                h.remove()
            self._hooks = []
            return
        if self.optimizer is not None:
            self._hooks.append(self.optimizer.register_step_pre_hook(self._pre_step))
            self._hooks.append(self.optimizer.register_step_post_hook(self._post_step))
        if self.activations and self.ordered:  # before that, the ordering hooks measure
            for i, m in zip(self._order, self.modules, strict=True):
                self._hooks.append(m.register_forward_hook(self._rms(i)))

    def _forward(self, i: int):
        def hook(module, inputs, output):
            if not self.ordered:
                if i not in self._seen:
                    self._seen.append(i)
                    if len(self._seen) == 1:
                        self._sizes = [_width(inputs[0] if inputs else None)]
                    self._sizes.append(_width(output))
                if len(self._seen) == len(self.modules):
                    self._reorder()
            if self.activations and self.armed:
                self._measure_rms(i, output)

        return hook

    def _rms(self, i: int):
        def hook(module, inputs, output):
            self._measure_rms(i, output)

        return hook

    def _measure_rms(self, i: int, output) -> None:
        if isinstance(output, torch.Tensor):
            began = time.perf_counter()
            with torch.no_grad():
                self.act[i] = output.detach().float().pow(2).mean().sqrt()
            self.spent += time.perf_counter() - began

    def _reorder(self) -> None:
        """Forward order, once every layer has run (unused layers keep module order)."""
        order = self._seen + [i for i in range(len(self.modules)) if i not in self._seen]
        self._order = order
        self.names = [self.names[i] for i in order]
        self.modules = [self.modules[i] for i in order]
        self.params = [self.params[i] for i in order]
        self.sizes = self._sizes if len(self._sizes) == len(order) + 1 else None
        self.ordered = True
        self._index_params()
        for h in self._ordering:  # the order is known: forward passes need these no more
            h.remove()
        self._ordering = []
        if self.armed and self.activations:  # from the next forward on, while armed
            for i, m in zip(self._order, self.modules, strict=True):
                self._hooks.append(m.register_forward_hook(self._rms(i)))

    def _index_params(self) -> None:
        self._flat = [p for ps in self.params for p in ps]
        self._owner = [k for k, ps in enumerate(self.params) for _ in ps]

    def finish_order(self) -> None:
        """Called before the run is described: whatever the first forward saw is the order."""
        if not self.ordered and self._seen:
            self._reorder()

    @torch.no_grad()
    def measure_grads(self) -> None:
        """On an armed step: one fused norm over every gradient (accumulated in float64)."""
        if not self.armed:
            return
        began = time.perf_counter()
        grads, owners = [], []
        for k, p in zip(self._owner, self._flat, strict=True):
            if p.grad is not None:
                grads.append(p.grad)
                owners.append(k)
        if grads:
            self.grad_norm = Later("grad", _norms(grads), owners, len(self.params))
        self.spent += time.perf_counter() - began

    @torch.no_grad()
    def _pre_step(self, optimizer, args, kwargs) -> None:
        if not self.armed:
            return
        self.measure_grads()
        began = time.perf_counter()
        self._before = torch._foreach_mul(self._flat, 1.0)  # one copy of every parameter
        self.spent += time.perf_counter() - began

    @torch.no_grad()
    def _post_step(self, optimizer, args, kwargs) -> None:
        if self._before is None:
            return
        began = time.perf_counter()
        moved = torch._foreach_sub(self._flat, self._before)
        norms = _norms(moved + self._before)
        self.update_ratio = Later("ratio", norms, self._owner, len(self.params))
        self._before = None
        self.spent += time.perf_counter() - began

    def take(self) -> tuple[Later | None, Later | None, Later | None]:
        """This step's (grad_norm, update_ratio, act_rms), each None when not measured."""
        if self.grad_norm is None and self.optimizer is None:
            self.measure_grads()
        acts = None
        if self.activations and self.act:
            zero = torch.zeros((), device=next(iter(self.act.values())).device)
            rms = torch.stack([self.act.get(i, zero) for i in self._order])
            acts = Later("rms", rms, [], len(self._order))
        out = (self.grad_norm, self.update_ratio, acts)
        self.grad_norm = self.update_ratio = None
        self.act = {}
        return out

    def close(self) -> None:
        self.arm(False)
        for h in self._ordering:
            h.remove()
        self._ordering = []


def _width(x) -> int:
    return int(x.shape[-1]) if isinstance(x, torch.Tensor) and x.ndim >= 1 else 1


def _norms(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """L2 norms accumulated in float64 (a large layer keeps 1e-6 relative accuracy), fused;
    left as 0-d tensors for `Later.resolve` to stack (one operation less in training)."""
    return torch._foreach_norm(tensors, 2, dtype=torch.float64)
