"""Prepared scenes for a talk: one lesson each, heard within about a minute.

Each scene is a run config (over the defaults), a tempo, a caption presenter mode shows,
and the event that teaches its lesson with the step budget it arrives within
(tests/test_scenes.py holds every scene to it, deterministically by seed).
"""

from dataclasses import dataclass, field

import numpy as np

from app.engine.config import RunConfig
from app.engine.trainer import Trainer


@dataclass(frozen=True)
class Scene:
    name: str
    title: str
    caption: str
    expect: str  # the event the scene is about: chime, alarm, overfit or plateau
    budget: int  # steps within which `expect` happens
    settings: dict = field(default_factory=dict)

    def config(self) -> RunConfig:
        return RunConfig(**self.settings)

    @property
    def seconds(self) -> float:
        """Time to the lesson at the scene's tempo, at most."""
        return self.budget / self.config().steps_per_second

    def describe(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "caption": self.caption,
            "expect": self.expect,
            "budget": self.budget,
            "seconds": round(self.seconds, 1),
            "config": self.config().model_dump(),
        }


SCENES = {
    s.name: s
    for s in (
        Scene(
            "learns-well",
            "Learns well",
            "The spiral with sine features: the melody climbs, then the chime.",
            "chime",
            900,
        ),
        Scene(
            "lr-too-high",
            "Learning rate too high",
            "Learning rate 10: the loss leaps past knowing nothing, and the alarm sounds.",
            "alarm",
            300,
            {"learning_rate": 10.0},
        ),
        Scene(
            "lr-too-low",
            "Learning rate too low",
            "Learning rate 0.0003: the melody barely moves; the drone says it is stuck.",
            "plateau",
            1200,
            {"learning_rate": 0.0003, "steps_per_second": 24.0},
        ),
        Scene(
            "vanishing-gradients",
            "Vanishing gradients",
            "Six sigmoid layers: listen to the first layers' echoes fade to nothing.",
            "plateau",
            600,
            {
                "hidden": [8, 8, 8, 8, 8, 8],
                "activation": "sigmoid",
                "optimizer": "sgd",
                "learning_rate": 0.1,
            },
        ),
        Scene(
            "overfitting",
            "Overfitting",
            "Ten noisy points, a big net: train and test drift out of tune.",
            "overfit",
            200,
            {
                "dataset": "xor",
                "n_samples": 100,
                "noise": 0.5,
                "train_ratio": 0.1,
                "hidden": [64, 64, 64],
                "activation": "relu",
                "learning_rate": 0.01,
                "features": ["x1", "x2"],
                "stop_at_convergence": False,
            },
        ),
        Scene(
            "underfitting",
            "Underfitting",
            "A straight line cannot split a spiral: it plateaus, and the drone holds.",
            "plateau",
            600,
            {"hidden": [], "features": ["x1", "x2"]},
        ),
        Scene(
            "digits",
            "Handwritten digits",
            "8x8 digits, ten voices of confusion resolving into the chime.",
            "chime",
            800,
            {"dataset": "digits", "hidden": [16], "batch_size": 32, "learning_rate": 0.01},
        ),
    )
}


def rehearse(config: RunConfig, max_steps: int, until: str | None = None) -> tuple[list, dict]:
    """Train with the Runner's cadence but no thread; returns the events and mean grad norms.

    Stops at the first `until` event, an alarm, or after `max_steps`.
    """
    trainer = Trainer(config)
    events: list[dict] = []
    grads = np.zeros(trainer.net.n_layers)
    _, first = trainer.evaluate(with_grid=False)
    events += first
    while trainer.step < max_steps:
        reason = trainer.train_step()
        if trainer.buffer.full:
            grads += trainer.buffer.take()["grad_norm"].sum(axis=0)
        if reason:
            events.append({"type": "alarm", "step": trainer.step, "reason": reason})
            break
        if trainer.step % trainer.eval_every == 0:
            _, found = trainer.evaluate(with_grid=False)
            events += found
            if any(e["type"] in (until, "alarm") for e in found):
                break
    grads += trainer.buffer.take()["grad_norm"].sum(axis=0)
    return events, {"grad_norm": (grads / max(trainer.step, 1)).tolist(), "step": trainer.step}
