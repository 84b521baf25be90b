"""PyTorch Lightning: `Trainer(callbacks=[backbeat.lightning.BackbeatCallback()])`.

Gradient norms per layer are taken in `on_before_optimizer_step` (after backward, before
the step), the loss in `on_train_batch_end`; validation losses feed the overfit and
plateau detectors. Stopping the run from the page stops the trainer.
"""

import lightning.pytorch as pl

import backbeat
from backbeat.run import _scalar


class BackbeatCallback(pl.Callback):
    """Streams a Lightning fit to Backbeat; keyword arguments go to `backbeat.init`."""

    def __init__(self, name: str | None = None, activations: bool = False, **init_kwargs):
        self.name, self.activations, self.init_kwargs = name, activations, init_kwargs
        self.run: backbeat.Run | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        name = self.name or type(pl_module).__name__
        self.run = backbeat.init(name=name, config=dict(pl_module.hparams), **self.init_kwargs)
        self.run.watch(pl_module, activations=self.activations)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.run is not None and self.run._watch is not None:
            self.run._watch.measure_grads()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.run is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        metrics = {"loss": loss}
        for key in ("acc", "accuracy", "train_acc", "train_accuracy"):
            if key in trainer.callback_metrics:
                metrics["accuracy"] = trainer.callback_metrics[key]
                break
        self.run.log(metrics, step=trainer.global_step, epoch=trainer.current_epoch)
        if self.run.should_stop:
            trainer.should_stop = True

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.run is None or trainer.sanity_checking:
            return
        found = trainer.callback_metrics
        evals = {
            k: _scalar(found[k]) for k in ("val_loss", "val_acc", "val_accuracy") if k in found
        }
        if evals:
            self.run.log(evals, step=trainer.global_step)

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.run is not None:
            self.run.finish()

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.run is not None:
            self.run.finish("failed")
