"""A run as a training script sees it: `log` steps, `watch` a model, obey the page."""

import logging
import time

from backbeat.cadence import Cadence
from backbeat.entropy import entropy_lazy
from backbeat.sender import ENDED, MAX_EXTRA, Sender

log = logging.getLogger("backbeat")
EVAL_KEYS = frozenset(
    ("test_loss", "test_accuracy", "test_entropy", "train_loss", "train_accuracy")
)
ALIASES = {
    "val_loss": "test_loss",
    "val_accuracy": "test_accuracy",
    "val_acc": "test_accuracy",
    "acc": "accuracy",
    "train_acc": "train_accuracy",
}
FINISH_TIMEOUT = 10.0  # s `finish` waits for pending steps while connected


def _scalar(x):
    if x is None:
        return None
    if hasattr(x, "item"):
        x = x.item()
    return float(x)


def _value(x):
    """A float now; a one-element tensor off the CPU stays a tensor, read by the sender thread
    (so training never waits for a GPU to hand a value back)."""
    if x is None or type(x) is float:
        return x
    item = getattr(x, "item", None)
    if item is None:
        return float(x)
    if getattr(x, "is_cpu", True):
        return float(item())
    if x.numel() != 1:
        raise ValueError(f"expected one number, got a tensor of shape {tuple(x.shape)}")
    return x.detach()


class Run:
    """Returned by `backbeat.init`; every method is safe to call whatever the server does."""

    def __init__(
        self,
        server: str,
        token: str | None,
        name,
        config,
        pausable: bool,
        measure_every: int | None = None,
    ):
        self.server, self.name, self.config, self.pausable = (
            server,
            name,
            dict(config or {}),
            pausable,
        )
        self.step = 0
        self.epoch = 0
        self.server_process = None
        self._watch = None
        self._tensor = None  # torch.Tensor once a model is watched (log's fast path reads it)
        self._layers: list[str] = []
        self._finished = False
        self._started = False
        self._cadence = Cadence(measure_every)
        # unmeasured steps the cadence grants before its next measurement: `log` takes those
        # (a lone loss) on its fast path and tells the cadence at its next `tick`
        self._quiet = self._quiet_from = 0
        self._refused: set[str] = set()  # extra names refused (warned about once each)
        self._sender = Sender(server, token, self._spec)
        self._pending = self._sender.pending

    def _spec(self) -> dict:
        layers, sizes = list(self._layers), None
        if self._watch is not None:
            self._watch.finish_order()
            layers, sizes = list(self._watch.names), self._watch.sizes
        config = {
            str(k)[:100]: v
            if isinstance(v, int | float | bool | str) or v is None
            else str(v)[:100]
            for k, v in list(self.config.items())[:50]
        }
        spec = {"name": self.name, "layers": [n[:100] for n in layers], "config": config}
        if sizes is not None:
            spec["sizes"] = sizes
        return spec

    # -- the page's controls -------------------------------------------------------------
    @property
    def id(self) -> str | None:
        return self._sender.run_id

    @property
    def state(self) -> str:
        return self._sender.state

    @property
    def should_stop(self) -> bool:
        """True once the presenter stopped the run (or the server ended it, e.g. diverged)."""
        return self._sender.state in ENDED and self._sender.state != "finished"

    @property
    def paused(self) -> bool:
        return self._sender.state == "paused"

    @property
    def dropped(self) -> int:
        """Steps dropped because the server was slow or away."""
        return self._sender.dropped

    # -- logging ------------------------------------------------------------------------
    def watch(self, model, optimizer=None, activations: bool = False) -> "Run":
        """Echoes per layer of a PyTorch model; call it before the first `log`."""
        try:
            import torch

            from backbeat.watch import TorchWatch

            self._watch = TorchWatch(model, optimizer, activations)
            self._tensor = torch.Tensor
        except Exception as exc:  # a model we cannot hook must not stop training
            log.warning("backbeat: cannot watch this model: %s", exc)
        return self

    def declare_layers(self, names: list[str]) -> "Run":
        """Layer names for norms passed to `log(grad_norm=...)` (what `watch` does for torch)."""
        self._layers = [str(n) for n in names]
        return self

    @property
    def measuring(self) -> bool:
        """Whether the coming logged step is measured (echoes, entropy from logits)."""
        return not self._quiet

    def log(
        self,
        metrics: dict | None = None,
        step: int | None = None,
        *,
        logits=None,
        probs=None,
        epoch: int | None = None,
        grad_norm: list[float] | None = None,
    ) -> None:
        """Record one step; never raises and never waits (unless pausable and paused).

        `loss` makes a step (a beat); `test_loss`, `test_accuracy` (or `val_*`) make an
        evaluation for the overfit and plateau detectors. Any other scalar (a learning
        rate, a metric of your own) is kept too: stored with the run and exported as an
        `extra_<name>` column. Echoes and the entropy from `logits`/`probs` are measured
        on the steps the cadence picks (`backbeat.init(measure_every=...)`).
        """
        try:
            quiet = self._quiet
            loss = accuracy = None
            if quiet and epoch is None and grad_norm is None and type(metrics) is dict:
                size = len(metrics)
                if size == 1 or size == 2 and "accuracy" in metrics:
                    loss = metrics.get("loss")
            if loss is None:
                self._log(metrics, step, logits, probs, epoch, grad_norm)
            else:  # the common step, unmeasured: as little Python as the row needs
                if type(loss) is not float:  # a CPU tensor read inline: the common case
                    tensor = self._tensor
                    loss = loss.item() if type(loss) is tensor and loss.is_cpu else _value(loss)
                if size == 2 and (accuracy := metrics["accuracy"]) is not None:
                    accuracy = accuracy if type(accuracy) is float else _value(accuracy)
                self.step = self.step + 1 if step is None else int(step)
                self._quiet = quiet - 1
                if quiet == 1 and self._watch is not None:
                    self._watch.arm(True)  # the next step is measured
                pending = self._pending  # a row as `_log` puts it, nothing measured
                row = (self.step, time.time(), self.epoch, loss, accuracy, None, None, None, None)
                pending.append(row)
                if len(pending) > self._sender.max_pending:
                    self._sender.overflow()
        except Exception as exc:
            log.warning("backbeat: could not log this step: %s", exc)
        if self.pausable and self._sender.state == "paused":
            while not self._sender.unpaused.wait(0.1):
                if self._sender.state != "paused":
                    break

    def _log(self, metrics, step, logits, probs, epoch, grad_norm) -> None:
        # a measured step's whole call counts as measuring: with the fast path taking the
        # unmeasured ones, this code runs only every so often, and runs cold
        entered = time.perf_counter()
        loss = accuracy = entropy = None
        evals = extra = None
        for key, value in (metrics or {}).items():
            key = ALIASES.get(key, key)
            if key == "loss":
                loss = value
            elif key == "accuracy":
                accuracy = value
            elif key == "entropy":
                entropy = value
            elif key in EVAL_KEYS:
                evals = evals or {}
                evals[key] = _scalar(value)
            else:
                extra = extra or {}
                extra[key] = value
        if epoch is not None:
            self.epoch = int(epoch)
        if loss is not None:
            self.step = int(step) if step is not None else self.step + 1
            if entropy is not None:
                entropy = _value(entropy)
            grads = ratios = acts = None
            cadence, watch = self._cadence, self._watch
            cadence.skip(self._quiet_from - self._quiet)  # the steps the fast path took
            measured = cadence.tick()
            if measured:
                if entropy is None and (logits is not None or probs is not None):
                    entropy = entropy_lazy(logits, probs)  # a tensor: the sender reads it
                if watch is not None:
                    grads, ratios, acts = watch.take()
                    entered -= watch.spent  # the hooks' share, before this call
                    watch.spent = 0.0
            if grad_norm is not None:
                grads = grad_norm
            self._sender.put(
                (
                    self.step,
                    time.time(),
                    self.epoch,
                    _value(loss),
                    None if accuracy is None else _value(accuracy),
                    entropy,
                    grads,
                    ratios,
                    acts,
                )
            )
            if measured:
                cadence.took(time.perf_counter() - entered)
            self._quiet = self._quiet_from = cadence.until_due()
            if watch is not None and watch.armed != cadence.due:
                watch.arm(cadence.due)  # hooks only while a measured step is coming
        elif step is not None:
            self.step = max(self.step, int(step))
        if extra:
            self._put_extra(extra)
        if evals:
            self._sender.put_eval({"step": self.step, **evals})
        if not self._started:
            self._started = True
            self._sender.start()

    def _put_extra(self, extra: dict) -> None:
        """Scalars beyond loss/accuracy/entropy, at this step; a non-scalar is refused once."""
        kept = {}
        for key, value in extra.items():
            name = str(key)
            try:
                if not 1 <= len(name) <= 100:
                    raise ValueError("names need 1 to 100 characters")
                if (
                    name not in self._sender.extra_names
                    and len(self._sender.extra_names) >= MAX_EXTRA
                ):
                    raise ValueError(f"a run keeps at most {MAX_EXTRA} extra scalars")
                kept[name] = _value(value)
            except (TypeError, ValueError, RuntimeError) as exc:
                if name not in self._refused:
                    self._refused.add(name)
                    log.warning("backbeat: %r is not kept: %s", name[:100], exc)
        if kept:
            self._sender.put_extra(self.step, kept)

    # -- the end ------------------------------------------------------------------------
    def finish(self, state: str = "finished", timeout: float = FINISH_TIMEOUT) -> None:
        """Send what is pending and end the run; waits only while the server is reachable."""
        if self._finished:
            return
        self._finished = True
        sender = self._sender
        sender.end_state = state
        sender.closing.set()
        if not self._started:
            self._started = True
            sender.start()
        deadline = time.monotonic() + timeout
        while not sender.done.wait(0.05):
            if time.monotonic() > deadline or not sender.connected.is_set() and sender.error:
                break
        unsent = len(sender.pending) + len(sender.inflight)
        if sender.dropped or unsent or sender.dropped_extras:
            log.warning(
                "backbeat: %d step(s) dropped and %d unsent, %d extra scalar row(s) dropped "
                "(server slow or away)",
                sender.dropped,
                unsent,
                sender.dropped_extras,
            )
        if self._watch is not None:
            self._watch.close()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        self.finish("failed" if kind is not None else "finished")
