"""Hugging Face `transformers`: `Trainer(..., callbacks=[backbeat.hf.BackbeatCallback()])`.

A beat is each training log the Trainer makes: `loss` is the mean since its previous log,
so `TrainingArguments(logging_steps=1)` gives one beat a step. Gradient norms per layer
are taken in `on_pre_optimizer_step` (after backward and clipping, before the step) of
each step that will be logged; evaluations (`eval_loss`, `eval_accuracy`) feed the
overfit and plateau detectors; the learning rate and the Trainer's total gradient norm
are kept as extra scalars. Stopping the run from the page stops the Trainer.
"""

import transformers

import backbeat

EVAL_NAMES = {"eval_loss": "test_loss", "eval_accuracy": "test_accuracy"}
EXTRA_NAMES = {"learning_rate": "learning_rate", "grad_norm": "grad_norm_total"}


class BackbeatCallback(transformers.TrainerCallback):
    """Streams a Trainer's fit to Backbeat; keyword arguments go to `backbeat.init`."""

    def __init__(self, name: str | None = None, activations: bool = False, **init_kwargs):
        self.name, self.activations, self.init_kwargs = name, activations, init_kwargs
        self.run: backbeat.Run | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        name = self.name or (type(model).__name__ if model is not None else "transformers")
        config = {"learning_rate": args.learning_rate, "optimizer": str(args.optim)}
        config["batch_size"] = args.per_device_train_batch_size
        self.run = backbeat.init(name=name, config=config, **self.init_kwargs)
        if model is not None:
            self.run.watch(model, activations=self.activations)

    def _logged_next(self, args, state) -> bool:
        """Whether the coming optimizer step ends in a training log (norms are taken then)."""
        every = state.logging_steps or args.logging_steps
        strategy = getattr(args.logging_strategy, "value", args.logging_strategy)
        if strategy != "steps" or not every:
            return True
        coming = state.global_step + 1
        return coming % int(every) == 0 or (coming == 1 and args.logging_first_step)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        watch = self.run._watch if self.run is not None else None
        if watch is not None and self._logged_next(args, state):
            watch.measure_grads()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.run is None or not logs or "loss" not in logs:
            return  # evaluation logs come through on_evaluate; the summary has no "loss"
        metrics = {"loss": logs["loss"]}
        metrics.update({new: logs[old] for old, new in EXTRA_NAMES.items() if old in logs})
        self.run.log(metrics, step=state.global_step, epoch=int(state.epoch or 0))
        if self.run.should_stop:
            control.should_training_stop = True

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.run is None or not metrics:
            return
        evals = {new: metrics[old] for old, new in EVAL_NAMES.items() if old in metrics}
        if evals:
            self.run.log(evals, step=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.run is not None:
            self.run.finish()
