"""Keras 3: `model.fit(..., callbacks=[backbeat.keras.BackbeatCallback()])`.

Per-batch loss and metrics come from Keras's running epoch means, unrolled with the
batch index (exact for equal batches; the last, smaller batch of an epoch is
approximate). Per-layer gradient norms: on the torch backend, from each layer's
weights' `.grad` after the step (Keras clears them at the start of the next one); the
TensorFlow and JAX backends expose no gradients to callbacks, so there only loss and
metrics are sent (no echoes).
"""

import math

import keras

import backbeat


def _leaf_layers(model) -> list:
    leaves = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if layer.trainable_weights and not list(layer._flatten_layers(include_self=False))
    ]
    return leaves


class BackbeatCallback(keras.callbacks.Callback):
    """Streams a Keras fit to Backbeat; keyword arguments go to `backbeat.init`."""

    def __init__(self, name: str | None = None, **init_kwargs):
        super().__init__()
        self.name, self.init_kwargs = name, init_kwargs
        self.run: backbeat.Run | None = None
        self.step = 0
        self.epoch = 0
        self.means: dict[str, float] = {}

    def on_train_begin(self, logs=None) -> None:
        self.layers = _leaf_layers(self.model) if keras.backend.backend() == "torch" else []
        self.run = backbeat.init(name=self.name or self.model.name, **self.init_kwargs)
        self.run.declare_layers([layer.name for layer in self.layers])

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch, self.means = epoch, {}

    def _per_batch(self, name: str, mean: float, batch: int) -> float:
        """Keras logs the epoch's running mean; this batch's own value from two means."""
        previous = self.means.get(name)
        self.means[name] = mean
        return mean if previous is None or batch == 0 else mean * (batch + 1) - previous * batch

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self.run is None or not logs or "loss" in logs and logs["loss"] is None:
            return
        self.step += 1
        metrics = {"loss": self._per_batch("loss", float(logs["loss"]), batch)}
        for key in ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy"):
            if key in logs:
                metrics["accuracy"] = self._per_batch(key, float(logs[key]), batch)
                break
        grads = self._grad_norms() if self.run.measuring else None  # on the run's cadence
        self.run.log(metrics, step=self.step, epoch=self.epoch, grad_norm=grads)
        if self.run.should_stop:
            self.model.stop_training = True

    def _grad_norms(self) -> list[float] | None:
        if not self.layers:
            return None
        norms = []
        for layer in self.layers:
            squares = 0.0
            for v in layer.trainable_weights:
                grad = getattr(v.value, "grad", None)
                if grad is not None:
                    squares += float(grad.double().square().sum())
            norms.append(math.sqrt(squares))
        return norms

    def on_epoch_end(self, epoch, logs=None) -> None:
        if self.run is None or not logs:
            return
        evals = {k: float(logs[k]) for k in ("val_loss", "val_accuracy", "val_acc") if k in logs}
        if evals:
            self.run.log(evals, step=self.step)

    def on_train_end(self, logs=None) -> None:
        if self.run is not None:
            self.run.finish()
