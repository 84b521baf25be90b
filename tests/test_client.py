"""`import backbeat` against a real server: a real PyTorch loop, the page's controls, safety."""

import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch  # make test installs torch==2.13.0, the CPU build
from _server import ThreadedServer, free_port

import backbeat
from app.web.devserver import wait_until
from app.web.server import create_app
from app.web.settings import Settings

torch.set_num_threads(1)  # two cores shared by many: no thread pool fighting over them
GRAD_RTOL = 1e-6  # client norms vs numpy's from each layer's .grad (float32 storage: ≤ 6e-8)


@pytest.fixture
def server(tmp_path):
    app = create_app(Settings(data_dir=tmp_path / "data"))
    with ThreadedServer(app, ws_max_size=1 << 20) as srv:
        yield srv


def mlp(seed: int = 0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 16),
        torch.nn.Tanh(),
        torch.nn.Linear(16, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 3),
    )


def batches(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(32, 8, generator=g)
        yield x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


def layer_norms(model) -> list[float]:
    """Each Linear layer's gradient norm over weights and biases, computed apart in float64."""
    layers = [m for m in model if isinstance(m, torch.nn.Linear)]
    return [
        float(np.sqrt(sum(float(p.grad.double().square().sum()) for p in m.parameters())))
        for m in layers
    ]


def stored(srv, run_id: str) -> dict:
    return httpx.get(f"{srv.url}/api/runs/{run_id}/metrics").json()


def test_real_pytorch_loop_stores_every_step_with_its_layer_norms(server):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = backbeat.init(name="torch mlp", server=server.url, start_server=False, measure_every=1)
    run.watch(model, opt)
    expected = []
    for x, y in batches(120):
        opt.zero_grad()
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        expected.append(layer_norms(model))
        opt.step()
        run.log({"loss": loss}, logits=logits)
    run.finish()
    assert run.state == "finished"
    record = httpx.get(f"{server.url}/api/runs/{run.id}").json()
    assert record["layer_names"] == ["0", "2", "4"]
    assert record["layers"] == [8, 16, 16, 3]
    cols = stored(server, run.id)
    assert cols["beats"]["step"] == list(range(1, 121))
    got = np.array(cols["echoes"]["grad_norm"], dtype=np.float64)
    rel = np.abs(got - np.array(expected)) / np.array(expected)
    assert rel.max() <= GRAD_RTOL, rel.max()
    ratios = np.array(cols["echoes"]["update_ratio"], dtype=np.float64)
    assert np.all(np.isfinite(ratios)) and np.all(ratios > 0)
    entropy = np.array(cols["beats"]["entropy"], dtype=np.float64)
    assert np.all((entropy > 0) & (entropy <= 1))
    assert cols["crescendo"][-1] > 0  # the loss fell: the volume grew
    assert "measured" not in cols  # every step was measured: nothing held


def test_sparse_echoes_are_exact_where_measured_and_held_in_between(server):
    """Echoes and entropy every 4th step: the measured ones exact, the others hold the last."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = backbeat.init(server=server.url, start_server=False, measure_every=4)
    run.watch(model, opt)
    expected, entropies = [], []
    for x, y in batches(40):
        opt.zero_grad()
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        expected.append(layer_norms(model))
        p = torch.softmax(logits.detach().double(), 1)
        entropies.append(float(-(p * p.log()).sum(1).mean() / np.log(3)))
        opt.step()
        run.log({"loss": loss}, logits=logits)
    run.finish()
    cols = stored(server, run.id)
    measured = list(range(1, 41, 4))  # the first step, then every 4th
    assert cols["measured"] == measured
    assert cols["beats"]["step"] == list(range(1, 41))  # every step is still a beat
    got = np.array(cols["echoes"]["grad_norm"], dtype=np.float64)
    ratios = np.array(cols["echoes"]["update_ratio"], dtype=np.float64)
    entropy = np.array(cols["beats"]["entropy"], dtype=np.float64)
    for i, step in enumerate(range(1, 41)):
        last = max(s for s in measured if s <= step) - 1  # the row it holds
        rel = np.abs(got[i] - expected[last]) / np.array(expected[last])
        assert rel.max() <= GRAD_RTOL, (step, rel.max())
        assert np.array_equal(ratios[i], ratios[last]) and np.all(ratios[i] > 0)
        if step in measured:
            assert entropy[i] == pytest.approx(entropies[i], rel=1e-6)
        else:  # entropy is a beat's own value: not measured, not invented
            assert np.isnan(entropy[i])
    csv = httpx.get(f"{server.url}/api/runs/{run.id}/metrics", params={"format": "csv"}).text
    lines = [line.split(",") for line in csv.splitlines()]
    assert lines[0][-1] == "measured"
    assert [row[0] for row in lines[1:] if row[-1] == "1"] == [str(s) for s in measured]


def test_extra_scalars_are_stored_and_exported(server, caplog):
    run = backbeat.init(server=server.url, start_server=False)
    for step in range(1, 31):
        lr = torch.tensor(0.1 / step)
        run.log({"loss": 1.0 / step, "lr": lr, "my_metric": step % 3, "bad": [1, 2]})
    run.log({"grad_clip": 0.5}, step=30)  # no loss: not a beat, still kept at its step
    run.finish()
    assert "'bad' is not kept" in caplog.text  # refused once, loudly, training unharmed
    assert caplog.text.count("'bad' is not kept") == 1
    cols = stored(server, run.id)
    assert cols["beats"]["step"] == list(range(1, 31))
    extra = cols["extra"]
    assert extra["step"] == list(range(1, 31))
    assert extra["lr"] == pytest.approx([0.1 / s for s in range(1, 31)], rel=1e-6)
    assert extra["my_metric"] == [float(s % 3) for s in range(1, 31)]
    assert extra["grad_clip"] == [None] * 29 + [0.5]
    assert "bad" not in extra
    csv = httpx.get(f"{server.url}/api/runs/{run.id}/metrics", params={"format": "csv"}).text
    header, *rows = [line.split(",") for line in csv.splitlines()]
    assert header[-3:] == ["extra_grad_clip", "extra_lr", "extra_my_metric"]
    assert len(rows) == 30
    assert rows[29][-3] == "0.5" and rows[29][-1] == "0.0"
    assert float(rows[29][-2]) == pytest.approx(0.1 / 30, rel=1e-6)  # a float32 tensor


def test_server_down_training_finishes_unharmed(tmp_path):
    port = free_port()  # nothing listens here
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = backbeat.init(server=f"http://127.0.0.1:{port}", start_server=False)
    run._sender.max_pending = 50
    log_times = []
    for x, y in batches(200):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        t1 = time.perf_counter()
        run.log({"loss": loss.item()})
        log_times.append(time.perf_counter() - t1)
    began = time.monotonic()
    run.finish()
    assert time.monotonic() - began < 5  # no waiting on a server that is not there
    assert run.dropped == 150  # the oldest went, counted
    assert run.state == "starting" and not run.should_stop
    # log() never waits on the absent server (a connect attempt alone would take a second);
    # its cost against a training step is measured in bench/client.py --server-down
    assert max(log_times) < 0.5, f"log() blocked for {max(log_times):.2f} s"


def test_pause_and_stop_from_the_page_reach_the_script(server):
    run = backbeat.init(server=server.url, start_server=False, pausable=True)
    run.log({"loss": 1.0})
    wait_until(lambda: run.id and run.state == "running", 20, "the run to be created")
    control = f"{server.url}/api/runs/{run.id}/control"
    assert httpx.post(control, json={"action": "pause"}).status_code == 200
    wait_until(lambda: run.paused, 10, "the pause to reach the script")
    began = time.monotonic()
    resumer = __import__("threading").Timer(
        0.5, lambda: httpx.post(control, json={"action": "resume"})
    )
    resumer.start()
    run.log({"loss": 0.9})  # blocks while paused
    assert time.monotonic() - began >= 0.4
    assert not run.paused
    assert httpx.post(control, json={"action": "stop"}).status_code == 200
    wait_until(lambda: run.should_stop, 10, "the stop to reach the script")
    run.finish()
    assert httpx.get(f"{server.url}/api/runs/{run.id}").json()["state"] == "stopped"


def test_vanished_script_ends_its_run_as_interrupted(server):
    run = backbeat.init(server=server.url, start_server=False)
    run.log({"loss": 1.0})
    # the step acknowledged: no batch in flight will make the server hear of us again
    wait_until(lambda: run.id and run._sender.sent >= 1, 20, "the first step to be stored")
    handle = server.call(lambda: server.app.state.manager.get(run.id).handle)
    handle.socketed, handle.sockets = True, 0  # as if the socket had closed...
    handle.last_heard -= 60  # ...a minute ago
    wait_until(lambda: not handle.alive, 10, "the run to be interrupted")
    assert handle.state == "interrupted"
    wait_until(lambda: run.state == "interrupted", 10, "the script to hear of it")
    assert run.should_stop
    run.finish()


def test_the_readme_example_runs_as_is(server, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Hear your own training", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert 8 <= len(code.strip().splitlines()) <= 16  # about ten lines
    monkeypatch.setenv("BACKBEAT_SERVER", server.url)
    exec(compile(code.replace("range(2000)", "range(50)"), "README.md", "exec"), {})
    [listed] = httpx.get(f"{server.url}/api/runs").json()
    assert listed["state"] == "finished" and listed["step"] == 50
