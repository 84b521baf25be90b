"""A replay draws the network as it was at the replayed step, and nothing from beyond it."""

from browser.test_stage import SCRUB, finished_run, status

STEPS = 1500


def test_a_scrubbed_replay_draws_the_weights_and_charts_of_its_step(probe, server):
    run = finished_run(server, max_steps=STEPS, stop_at_convergence=False)
    final = server.http.get(f"/api/runs/{run['id']}/model").json()
    page = probe.page
    page.goto(f"{server.url}/?run={run['id']}&replay=1#tempo=20")
    probe.wait(lambda: status(probe) == "replay", what="the replay to start")

    def shown(step_range):
        lo, hi = step_range
        probe.wait(lambda: lo <= probe.value("step-count") <= hi, what=f"the replay in {lo}–{hi}")
        page.keyboard.press("Space")
        probe.wait(lambda: status(probe) == "replay paused", what="the replay paused")
        at = probe.state()["step"]

        expected = server.http.get(f"/api/runs/{run['id']}/model", params={"step": at}).json()

        def settled():  # the diagram's last answer: a step with the paused step's snapshot
            step = page.evaluate("window.backbeat.model.asked")
            if step is None:
                return False
            got = server.http.get(f"/api/runs/{run['id']}/model", params={"step": step}).json()
            return got.get("step") == expected["step"]

        probe.wait(settled, what="the snapshot of the paused step")
        assert expected["snapshot"] is True and expected["step"] <= at
        probe.wait(
            lambda: (
                page.evaluate("window.backbeat.pictures.weights")
                == [layer["weights"] for layer in expected["layers"]]
            ),
            what="the diagram to draw that snapshot",
        )
        pictures = page.evaluate("window.backbeat.pictures")
        assert pictures["lastStep"] <= at  # no chart shows the run beyond the replayed step
        assert pictures["ordered"]  # the history before the scrub point is drawn once, in order
        return pictures

    early = shown((1, 400))
    assert early["weights"] != [layer["weights"] for layer in final["layers"]]

    page.get_by_test_id("scrub").evaluate(SCRUB, 1200)  # forward, then back
    shown((1200, 1400))
    page.get_by_test_id("scrub").evaluate(SCRUB, 300)
    back = shown((300, 600))
    assert back["lastStep"] >= 300  # the run before the scrub point is drawn
    assert probe.errors == []
