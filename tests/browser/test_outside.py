"""An outside run (a script using `import backbeat`) on the page: beats, echoes, layer names."""

import math
import threading

import backbeat


def test_the_page_plays_an_outside_run_with_its_layer_names(probe, server):
    run = backbeat.init(name="my script", server=server.url, start_server=False)
    run.declare_layers(["encoder", "decoder"])
    done = threading.Event()

    def train() -> None:  # a training loop elsewhere: ~20 steps a second
        step = 0
        while not done.wait(0.05) and not run.should_stop:
            step += 1
            loss = 2.0 * math.exp(-step / 200)
            run.log({"loss": loss, "accuracy": 1 - loss / 2}, grad_norm=[0.5 / step, 1.0 / step])
        run.finish()

    trainer = threading.Thread(target=train, daemon=True)
    trainer.start()
    try:
        probe.wait(lambda: run.id, what="the run to be created")
        probe.open()  # a page opened on a live run joins it
        probe.wait(lambda: probe.state()["runId"] == run.id, what="the page to join the run")
        gate = probe.page.get_by_role("button", name="Click to enable sound")
        if gate.is_visible():
            gate.click()
        probe.wait(lambda: len(probe.notes("beat")) >= 6, what="beats of the outside run")
        notes = probe.notes()
        for beat in [n for n in notes if n["kind"] == "beat"][:-1]:
            echoes = [n for n in notes if n["kind"] == "echo" and n["step"] == beat["step"]]
            assert [e["layer"] for e in echoes] == [1, 0]  # output side first
            assert all(e["gain"] > 0 for e in echoes)
        key = probe.page.locator("#grad-key").inner_text()
        assert "encoder" in key and "decoder" in key
        assert probe.exceptions == []
    finally:
        done.set()
        trainer.join(20)
    assert run.state == "finished"
