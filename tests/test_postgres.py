"""Run history in a shared PostgreSQL (`--store postgresql://...`), on a real Debian server.

The store's contract runs on PostgreSQL in tests/test_store.py; here: what only a server
can do (go away, come back, refuse), and real Backbeat processes on separate data
folders sharing one history (README, "Scaling out").
"""

import csv
import io
import json
import subprocess
import sys
from contextlib import closing

import httpx
import numpy as np
import pytest
from websockets.sync.client import connect

from app.store import StoreError, open_store, redacted
from app.web.devserver import free_port
from tests._postgres import postgres_server, postgres_url  # noqa: F401 - the fixtures
from tests._redis import redis_server  # noqa: F401 - the fixture
from tests.test_scaling import Viewer, control, create, run_of
from tests.test_store import LAYERS, assert_steps_equal, steps


def test_without_a_store_url_psycopg_is_never_imported():
    """`make run` needs no PostgreSQL: the server, its command and the store never load it."""
    code = (
        "import sys, app.web.cli, app.web.server, app.store\n"
        "from app.web.server import create_app\n"
        "create_app()\n"
        "app.web.cli.parse([])\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_binary')\n"
        "          or m == 'app.store.postgres']\n"
        "assert not loaded, loaded"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_an_unreachable_store_is_one_line_without_the_password(tmp_path):
    url = f"postgresql://backbeat:hunter2@127.0.0.1:{free_port()}/runs"
    with pytest.raises(StoreError) as caught:
        open_store(tmp_path, url)
    message = str(caught.value)
    assert "postgresql://backbeat@127.0.0.1" in message and "cannot be reached" in message
    assert "hunter2" not in message and "\n" not in message


def test_a_store_url_is_shown_without_its_password_or_options():
    url = "postgresql://backbeat:hunter2@db1:5432,db2:5433/runs?password=hunter2&sslmode=require"
    assert redacted(url) == "postgresql://backbeat@db1:5432,db2:5433/runs"


def test_the_command_refuses_a_bad_store_in_one_line(backbeat, tmp_path):
    argv = [*backbeat, "--no-browser", "--port", str(free_port()), "--data", str(tmp_path)]
    done = subprocess.run(
        [*argv, "--store", "sqlite:///x.db"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "postgresql://USER@HOST:PORT/DB" in done.stderr
    url = f"postgresql://backbeat:hunter2@127.0.0.1:{free_port()}/runs"
    done = subprocess.run([*argv, "--store", url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and "cannot be reached" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_a_missing_database_says_so(postgres_server, tmp_path):  # noqa: F811
    with pytest.raises(StoreError, match="does not exist: create it first"):
        open_store(tmp_path, postgres_server.url("no_such_database"))


def test_the_store_keeps_its_buffer_while_the_server_is_down_and_reconnects(
    postgres_server,  # noqa: F811
    postgres_url,  # noqa: F811
    tmp_path,
):
    store = open_store(tmp_path, postgres_url)
    store.create_run("r", {}, LAYERS, 1.0)
    store.append_steps("r", steps(0, 100))
    store.flush()
    postgres_server.stop()  # a restart of the shared server: every connection is cut
    try:
        store.append_steps("r", steps(100, 50))
        with pytest.raises(StoreError, match="run store postgresql://postgres@127.0.0.1"):
            store.flush()
        with pytest.raises(StoreError):  # reads need the server too
            store.read_steps("r")
    finally:
        postgres_server.start()
    assert len(store.read_steps("r")["step"]) == 150  # a new connection, and the buffer
    store.flush()  # what was buffered is written once
    store.flush()
    with closing(open_store(tmp_path, postgres_url)) as other:
        assert_steps_equal(other.read_steps("r"), steps(0, 150))
    store.close()


@pytest.fixture
def web_on(spawn, backbeat, tmp_path, postgres_url):  # noqa: F811
    """`web_on(folder, *extra)`: a web process on its own data folder and the shared store."""

    def start(folder: str, *extra: str):
        argv = [*backbeat, "--port", "{port}", "--no-browser", "--data", str(tmp_path / folder)]
        return spawn([*argv, "--store", postgres_url, *extra]).wait_healthy()

    return start


def listed(server) -> dict[str, dict]:
    return {r["id"]: r for r in httpx.get(f"{server.url}/api/runs", timeout=10).json()}


def replayed_steps(server, run_id: str) -> list[int]:
    """Every step of a stored run's replay, as fast as it goes."""
    url = f"{server.ws_url}/ws/runs/{run_id}?replay=1&steps_per_second=100000&detail=full"
    seen = []
    with connect(url, open_timeout=10, max_size=None) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["replay"] is True
        seen.extend(hello["history"]["step"])
        while (message := json.loads(ws.recv(timeout=20)))["type"] != "end":
            if message["type"] == "frame":
                seen.extend(message["beats"]["step"])
    return seen


def test_a_run_stored_in_postgres_is_listed_after_the_process_restarts(web_on, wait_until):
    first = web_on("first")
    run_id = create(first, steps_per_second=None, max_steps=300)
    wait_until(lambda: run_of(first, run_id)["state"] == "finished", 30, "the run to finish")
    first.close()
    again = web_on("second")  # another folder: nothing of the run is on this disk
    assert listed(again)[run_id]["state"] == "finished"
    metrics = httpx.get(f"{again.url}/api/runs/{run_id}/metrics", timeout=10).json()
    assert metrics["beats"]["step"] == list(range(1, 301))
    assert replayed_steps(again, run_id) == list(range(1, 301))


def test_a_server_rides_out_a_postgres_restart_and_loses_no_step(
    web_on,
    postgres_server,  # noqa: F811
    wait_until,
):
    a = web_on("a")
    run_id = create(a, steps_per_second=200, max_steps=1_000_000)
    viewer = Viewer(a, run_id)
    wait_until(lambda: len(viewer.of("frame")) > 5, 10, "the run to train")
    postgres_server.stop()
    try:
        wait_until(lambda: "could not write run history" in a.output(), 10, "the outage logged")
        seen = len(viewer.of("frame"))
        wait_until(lambda: len(viewer.of("frame")) > seen + 20, 10, "training on meanwhile")
    finally:
        postgres_server.start()
    wait_until(lambda: "run history written again" in a.output(), 10, "the history written")
    assert a.output().count("could not write run history") == 1  # one line, not a flood
    assert control(a, run_id, "stop").status_code == 200
    viewer.close()
    end = run_of(a, run_id)
    assert end["state"] == "stopped"
    stored = httpx.get(f"{a.url}/api/runs/{run_id}/metrics", timeout=10).json()
    assert stored["beats"]["step"] == list(range(1, end["step"] + 1))  # none lost, none twice


def test_a_second_server_without_a_broker_is_refused_the_store(
    web_on,
    backbeat,
    tmp_path,
    postgres_url,  # noqa: F811
):
    """Without --broker a server marks the live runs it finds interrupted: one per store."""
    first = web_on("first")
    run_id = create(first, steps_per_second=50, max_steps=1_000_000)
    argv = [*backbeat, "--no-browser", "--port", str(free_port()), "--data", str(tmp_path / "2")]
    done = subprocess.run(
        [*argv, "--store", postgres_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done
    assert "in use by another Backbeat server" in done.stderr and "--broker" in done.stderr
    assert run_of(first, run_id)["state"] == "running"  # left alone
    first.close()


def shared_web(spawn, backbeat, data, broker: str, store: str):
    """A web process on the shared Redis and PostgreSQL, with its own data folder (another host)."""
    argv = [*backbeat, "--port", "{port}", "--no-browser", "--data", str(data)]
    argv += ["--broker", broker, "--store", store]
    return spawn(argv).wait_healthy()


def test_processes_on_other_hosts_list_replay_and_export_the_same_runs(
    spawn,
    backbeat,
    tmp_path,
    redis_server,  # noqa: F811
    postgres_url,  # noqa: F811
    wait_until,
):
    """Two processes on one Redis and one PostgreSQL, each with its own data folder (no
    shared SQLite, as on two hosts): a run trained by A is B's to list, replay and export."""

    a, b = (shared_web(spawn, backbeat, tmp_path / f, redis_server.url, postgres_url) for f in "ab")
    run_id = create(a, start_paused=True, steps_per_second=None, max_steps=800)
    assert run_id in listed(b)  # written once to the shared store, read by all
    wait_until(lambda: run_of(b, run_id)["state"] == "paused", 10, "b to see the run paused")
    r = httpx.post(f"{b.url}/api/runs/{run_id}/control", json={"action": "resume"}, timeout=20)
    assert r.status_code == 200, r.text
    wait_until(lambda: listed(b)[run_id]["state"] == "finished", 30, "b to list it finished")
    metrics = httpx.get(f"{b.url}/api/runs/{run_id}/metrics", timeout=10).json()
    assert metrics["beats"]["step"] == list(range(1, 801))  # every step, as soon as it ends
    assert metrics["events"] == httpx.get(f"{a.url}/api/runs/{run_id}/metrics").json()["events"]
    exported = httpx.get(f"{b.url}/api/runs/{run_id}/metrics", params={"format": "csv"})
    rows = [r for r in csv.DictReader(io.StringIO(exported.text)) if r["loss"]]  # not step 0's eval
    assert [int(row["step"]) for row in rows] == list(range(1, 801))
    losses = np.array([float(row["loss"]) for row in rows])
    mine = httpx.get(f"{a.url}/api/runs/{run_id}/metrics", params={"format": "csv"}).text
    assert exported.text == mine and np.isfinite(losses).all()
    assert replayed_steps(b, run_id) == list(range(1, 801))
    model = wait_until(
        lambda: (
            (m := httpx.get(f"{b.url}/api/runs/{run_id}/model", timeout=10)).is_success and m.json()
        ),
        10,
        "the final model in the shared store",
    )
    assert model["layers"]
    for folder in ("a", "b"):
        assert not (tmp_path / folder / "backbeat.db").exists()  # no SQLite anywhere


def test_an_import_into_the_shared_store_is_every_processs_run(
    spawn,
    backbeat,
    tmp_path,
    redis_server,  # noqa: F811
    postgres_url,  # noqa: F811
    wait_until,
):
    """`backbeat import --store URL` writes where the servers read: two processes already
    serving on one Redis and one PostgreSQL (each its own data folder) list and replay it."""

    a, b = (shared_web(spawn, backbeat, tmp_path / f, redis_server.url, postgres_url) for f in "ab")
    log = tmp_path / "log.csv"
    rows = ["step,loss,val_loss"] + [
        f"{i},{2.0 / i},{1.0 if i % 50 == 0 else ''}" for i in range(1, 401)
    ]
    log.write_text("\n".join(rows) + "\n")
    argv = [*backbeat, "import", str(log), "--name", "old csv", "--data", str(tmp_path / "imp")]
    done = subprocess.run(
        [*argv, "--store", postgres_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert redacted(postgres_url) in done.stdout
    run_id = done.stdout.split(" as run ")[1].split()[0]
    for server in (a, b):
        record = listed(server)[run_id]
        assert record["state"] == "finished" and record["config"]["dataset"] == "old csv"
    metrics = httpx.get(f"{b.url}/api/runs/{run_id}/metrics", timeout=10).json()
    assert metrics["beats"]["step"] == list(range(1, 401))
    np.testing.assert_allclose(metrics["beats"]["loss"], 2.0 / np.arange(1, 401), rtol=1e-6)
    exported = httpx.get(f"{b.url}/api/runs/{run_id}/metrics", params={"format": "csv"})
    evals = [int(r["step"]) for r in csv.DictReader(io.StringIO(exported.text)) if r["test_loss"]]
    assert evals == list(range(50, 401, 50))
    assert replayed_steps(a, run_id) == list(range(1, 401))
    assert not (tmp_path / "imp" / "backbeat.db").exists()  # nothing went to SQLite


def test_an_import_refuses_a_bad_store_in_one_line(backbeat, tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("step,loss\n1,2.0\n")
    argv = [*backbeat, "import", str(log), "--data", str(tmp_path / "d"), "--store"]
    done = subprocess.run([*argv, "sqlite:///x.db"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "postgresql://USER@HOST:PORT/DB" in done.stderr
    url = f"postgresql://backbeat:hunter2@127.0.0.1:{free_port()}/runs"
    done = subprocess.run([*argv, url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and "cannot be reached" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
