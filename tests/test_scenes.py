"""Every scene teaches its lesson: its event within its step budget, the same way every time."""

import numpy as np
import pytest

from app.engine.scenes import SCENES, rehearse

LESSON_SECONDS = 60  # each scene is heard within about a minute at its own tempo
VANISHING_RATIO = 1e-2  # the first layer's mean gradient norm against the output layer's


@pytest.mark.parametrize("name", list(SCENES))
def test_each_scene_produces_its_event_within_its_budget(name):
    scene = SCENES[name]
    assert scene.seconds <= LESSON_SECONDS and scene.caption
    events, _ = rehearse(scene.config(), scene.budget, until=scene.expect)
    kinds = [e["type"] for e in events]
    assert scene.expect in kinds, kinds
    if scene.expect != "alarm":
        assert "alarm" not in kinds
    if scene.expect in ("plateau", "overfit"):
        assert "chime" not in kinds
    again, _ = rehearse(scene.config(), scene.budget, until=scene.expect)
    assert again == events  # deterministic by seed


def test_the_vanishing_gradients_scene_has_faint_first_layer_echoes():
    _, info = rehearse(SCENES["vanishing-gradients"].config(), 300)
    grads = np.array(info["grad_norm"])
    assert grads[0] < VANISHING_RATIO * grads[-1]
    assert np.all(np.diff(grads) > 0)  # each layer fainter than the one after it
    _, healthy = rehearse(SCENES["learns-well"].config(), 300)
    assert healthy["grad_norm"][0] > VANISHING_RATIO * healthy["grad_norm"][-1]


def test_scenes_are_served_with_captions_and_configs(api):
    body = api.client.get("/api/scenes").json()
    assert [s["name"] for s in body] == list(SCENES)
    for s in body:
        assert s["caption"] and s["expect"] and s["config"]["dataset"]
        assert s["seconds"] <= LESSON_SECONDS
