"""The page performs live: the default first run chimes and ends `converged`, knobs turn a
running run (cue, marker, same id), structural settings wait for a new run, scenes load."""

FIRST_RUN_DEADLINE = 150.0  # s: the chime is due at ~36 s of tempo; the machine is loaded


def test_the_default_first_run_chimes_and_ends_converged(probe):
    probe.open()
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.notes("chime"), FIRST_RUN_DEADLINE, what="the chime")
    probe.wait(
        lambda: probe.state()["runState"] == "converged", FIRST_RUN_DEADLINE, what="converged"
    )
    assert probe.page.get_by_test_id("status").inner_text().lower() == "converged"
    beats = probe.notes("beat")
    assert len(beats) > 100 and probe.notes("alarm") == []
    run = probe.server.http.get(f"/api/runs/{probe.state()['runId']}").json()
    assert run["state"] == "converged" and run["config"]["optimizer"] == "adam"


def test_a_live_knob_changes_the_running_run_with_a_cue(probe):
    probe.open("#dataset=circle&stop_at_convergence=false")
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.value("step-count") >= 10, what="ten steps")
    run_id = probe.state()["runId"]
    probe.page.get_by_test_id("lr").select_option("0.3")
    probe.wait(lambda: probe.notes("change"), what="the change cue")
    step = probe.value("step-count")
    probe.wait(lambda: probe.value("step-count") > step + 10, what="steps after the change")
    assert probe.state()["runId"] == run_id and probe.state()["runState"] == "running"
    run = probe.server.http.get(f"/api/runs/{run_id}").json()
    assert run["config"]["learning_rate"] == 0.3
    # a structural setting: the run plays on, the page offers a new run
    probe.page.get_by_test_id("dataset-xor").click()
    probe.wait(lambda: probe.page.get_by_test_id("needs-run").is_visible(), what="the notice")
    assert "new run" in probe.text("needs-run")
    assert probe.state()["runId"] == run_id and probe.state()["runState"] == "running"
    probe.page.get_by_test_id("new-run").click()
    probe.wait(lambda: probe.state()["runId"] not in (run_id, None), what="a new run")
    new = probe.server.http.get(f"/api/runs/{probe.state()['runId']}").json()
    assert new["config"]["dataset"] == "xor"


def test_a_scene_is_a_link_that_loads_its_settings_and_caption(probe):
    probe.open()
    probe.page.get_by_test_id("open-scenes").click()
    probe.page.get_by_test_id("scene-underfitting").click()
    probe.wait(lambda: "scene=underfitting" in probe.page.url, what="the scene's address")
    probe.page.get_by_test_id("play").click()
    probe.page.get_by_test_id("presenter").click()  # presenter mode shows the caption
    probe.wait(lambda: "Underfitting" in probe.text("run-caption"), what="the caption")
    probe.wait(lambda: probe.notes("plateau"), 90.0, what="the plateau drone")
    assert probe.page.get_by_test_id("banner").inner_text().count("stuck") == 1
