"""Several real Backbeat processes on one real Redis (README, "Scaling out")."""

# ruff: noqa: F811 - the fixtures come from tests/_redis.py and tests/_scaling.py

import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import redis

from app.broker import keys
from app.broker.codec import decode_block, decode_table, encode_block, encode_table
from app.engine.tables import Table
from tests._redis import redis_server  # noqa: F401 - the fixture
from tests._scaling import (  # noqa: F401 - web and worker are fixtures
    Viewer,
    control,
    covers_from_the_start,
    create,
    live_on,
    run_of,
    web,
    worker,
)


def test_viewers_on_each_process_receive_the_same_steps(web, wait_until):
    a, b = web(), web()
    run_id = create(a, start_paused=True, steps_per_second=None, max_steps=800)
    wait_until(lambda: run_of(b, run_id)["state"] == "paused", 10, "b to see the run paused")
    on_a, on_b = Viewer(a, run_id), Viewer(b, run_id)
    assert on_a.hello["run"]["id"] == on_b.hello["run"]["id"] == run_id
    assert control(b, run_id, "resume").status_code == 200  # through the other process
    for viewer in (on_a, on_b):
        end = wait_until(viewer.ended, 30, "the run's end")
        assert end["state"] == "finished" and end["step"] == 800
    assert on_a.steps() == on_b.steps() == list(range(1, 801))
    assert on_a.losses() == on_b.losses()
    # an unpaced run's evals are thinned per frame, and each process frames on its own clock
    last_a, last_b = on_a.of("eval")[-1], on_b.of("eval")[-1]
    assert last_a["step"] == last_b["step"] and last_a["train_loss"] == last_b["train_loss"]
    for viewer in (on_a, on_b):
        viewer.close()
    listed_a = {r["id"]: r for r in httpx.get(f"{a.url}/api/runs").json()}
    listed_b = {r["id"]: r for r in httpx.get(f"{b.url}/api/runs").json()}
    assert listed_a[run_id]["state"] == listed_b[run_id]["state"] == "finished"
    model = httpx.get(f"{b.url}/api/runs/{run_id}/model", timeout=10)
    assert model.status_code == 200 and model.json()["layers"]


def test_a_pause_sent_through_one_process_pauses_the_run(web, wait_until):
    a, b = web(), web()
    run_id = create(a, steps_per_second=100, max_steps=1_000_000)
    wait_until(lambda: run_of(a, run_id)["step"] > 20, 20, "the run to train")
    r = control(b, run_id, "pause")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "paused"
    wait_until(lambda: run_of(a, run_id)["state"] == "paused", 10, "the owner to say paused")
    held = run_of(a, run_id)["step"]
    r = control(b, run_id, "step")  # a single step, answered with its metrics, from afar
    assert r.status_code == 200, r.text
    assert r.json()["metrics"]["step"] == held + 1
    time.sleep(0.5)  # a paused run must not move: nothing to wait for
    assert run_of(a, run_id)["step"] == held + 1
    r = control(b, run_id, "tempo", steps_per_second=7.5)
    assert r.status_code == 200 and r.json()["steps_per_second"] == 7.5
    assert run_of(a, run_id)["steps_per_second"] == 7.5
    r = control(b, run_id, "set", changes={"learning_rate": 0.0123})
    assert r.status_code == 200 and r.json()["config"]["learning_rate"] == 0.0123
    assert run_of(a, run_id)["config"]["learning_rate"] == 0.0123
    assert run_of(b, run_id)["config"]["learning_rate"] == 0.0123
    r = control(b, run_id, "set", changes={"hidden": [3]})
    assert r.status_code == 409, r.text  # a structural setting, refused as on one process
    assert control(b, run_id, "stop").status_code == 200
    assert run_of(a, run_id)["state"] == "stopped"
    r = control(b, run_id, "resume")
    assert r.status_code == 409, r.text


def test_a_late_joiner_on_another_process_gets_its_hello_and_history(web, wait_until):
    a, b = web(), web()
    run_id = create(a, steps_per_second=200, max_steps=1_000_000)
    wait_until(lambda: run_of(a, run_id)["step"] > 300, 20, "some history")
    late = Viewer(b, run_id)
    hello = late.hello
    assert hello["type"] == "hello" and hello["run"]["state"] == "running"
    history = hello["history"]["step"]
    assert len(history) > 1 and history[-1] > 300
    assert hello["evals"] and hello["last_eval"]["grid"]
    wait_until(lambda: len(late.of("frame")) >= 3, 10, "live frames after the hello")
    first = late.of("frame")[0]["beats"]["step"][0]
    assert covers_from_the_start(history, first)  # nothing lost or repeated in between
    late.close()
    assert control(a, run_id, "stop").status_code == 200


def test_killing_a_web_process_leaves_the_others_serving(web, wait_until):
    a, b = web(), web()
    run_id = create(a, steps_per_second=100, max_steps=1_000_000)
    on_a, on_b = Viewer(a, run_id), Viewer(b, run_id)
    wait_until(lambda: on_b.of("frame"), 10, "frames on b")
    b.kill()
    seen = len(on_a.of("frame"))
    wait_until(lambda: len(on_a.of("frame")) > seen + 10, 10, "frames on a after b died")
    assert run_of(a, run_id)["state"] == "running"
    # now the owner dies: the survivor ends its run as interrupted, never leaves it hanging
    c = web()
    on_c = Viewer(c, run_id)
    a.kill()
    end = wait_until(on_c.ended, 20, "the orphaned run's end on c")
    assert end["state"] == "interrupted"
    assert "stopped" in end["summary"]["reason"]
    wait_until(lambda: run_of(c, run_id)["state"] == "interrupted", 10, "the stored state")
    assert httpx.get(f"{c.url}/api/health").status_code == 200


def test_a_worker_trains_a_run_created_through_a_web_process(web, worker, wait_until):
    a = web("--train", "workers")
    worker("--max-runs", "1")
    run_id = create(a, start_paused=True, steps_per_second=None, max_steps=500)
    wait_until(lambda: run_of(a, run_id)["state"] == "paused", 30, "a worker to take the run")
    viewer = Viewer(a, run_id)
    assert control(a, run_id, "resume").status_code == 200
    end = wait_until(viewer.ended, 30, "the run's end")
    assert end["state"] == "finished" and viewer.steps() == list(range(1, 501))
    viewer.close()
    wait_until(lambda: run_of(a, run_id)["state"] == "finished", 10, "the stored end")
    metrics = httpx.get(f"{a.url}/api/runs/{run_id}/metrics", timeout=10).json()
    assert metrics["beats"]["step"] == list(range(1, 501))  # the home recorded every step
    model = httpx.get(f"{a.url}/api/runs/{run_id}/model", timeout=10)
    assert model.status_code == 200, model.text


def test_a_worker_that_dies_ends_its_runs_as_interrupted(web, worker, wait_until):
    a = web("--train", "workers")
    w = worker()
    run_id = create(a, steps_per_second=100, max_steps=1_000_000)
    wait_until(lambda: run_of(a, run_id)["step"] > 20, 30, "the worker to train")
    w.kill()
    wait_until(lambda: run_of(a, run_id)["state"] == "interrupted", 20, "the run interrupted")
    assert "training process stopped" in run_of(a, run_id)["summary"]["reason"]


def test_a_broker_outage_is_announced_and_survived(web, redis_server, wait_until):
    a = web()
    run_id = create(a, steps_per_second=100, max_steps=1_000_000)
    viewer = Viewer(a, run_id)
    assert "notice" not in viewer.hello
    redis_server.stop()
    down = wait_until(lambda: viewer.of("notice"), 10, "the outage notice")
    assert down[0]["broker"] == "down"
    joined = Viewer(a, run_id)  # joins during the outage: its hello says so
    assert joined.hello["notice"]["broker"] == "down" and joined.hello["notice"]["detail"]
    joined.close()
    seen = len(viewer.of("frame"))
    wait_until(lambda: len(viewer.of("frame")) > seen + 10, 10, "local frames during the outage")
    meanwhile = create(a, steps_per_second=100, max_steps=1_000_000)  # still trains here
    wait_until(lambda: run_of(a, meanwhile)["step"] > 10, 20, "a run created during the outage")
    redis_server.start()  # same port, empty: the owner lists its runs again
    wait_until(lambda: [n for n in viewer.of("notice") if n["broker"] == "up"], 20, "reconnect")
    again = Viewer(a, run_id)
    assert "notice" not in again.hello
    again.close()
    b = web()
    for each in (run_id, meanwhile):
        late = live_on(b, each)
        history = late.hello["history"]["step"]
        wait_until(lambda late=late: late.of("frame"), 10, "frames on a process that joined later")
        # what Redis lost comes from the store, each step once, then the stream's
        assert covers_from_the_start(history, late.of("frame")[0]["beats"]["step"][0])
        late.close()
    viewer.close()


def test_an_unpaced_run_is_listed_again_after_redis_restarts(web, redis_server, wait_until):
    """Its backlog never runs dry: the relisting must not wait for it to (the old bug)."""
    a = web()
    run_id = create(a, steps_per_second=None, max_steps=10_000_000)
    viewer = Viewer(a, run_id, detail="audience")
    redis_server.stop()
    wait_until(lambda: viewer.of("notice"), 10, "the outage notice")
    redis_server.start()
    wait_until(lambda: [n for n in viewer.of("notice") if n["broker"] == "up"], 20, "reconnect")
    jobs = redis.Redis.from_url(redis_server.url)
    wait_until(lambda: jobs.sismember(keys.LIVE, run_id), 10, "the run listed again")
    assert jobs.hget(keys.run(run_id), "trainer")  # its record too
    late = live_on(web(), run_id)
    wait_until(lambda: late.of("frame"), 10, "frames on a process that joined later")
    late.close()
    viewer.close()
    assert control(a, run_id, "stop").status_code == 200


def test_a_queued_run_stops_before_any_worker_takes_it(web, worker, redis_server, wait_until):
    a = web("--train", "workers")
    run_id = create(a, steps_per_second=100, max_steps=1_000_000)
    assert run_of(a, run_id)["state"] == "starting"  # queued: no worker yet
    r = control(a, run_id, "pause")
    assert r.status_code == 409 and "no worker" in r.json()["detail"]
    r = control(a, run_id, "stop")
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    wait_until(lambda: run_of(a, run_id)["state"] == "stopped", 10, "the stored stop")
    worker()
    jobs = redis.Redis.from_url(redis_server.url)
    wait_until(lambda: jobs.xlen(keys.JOBS) == 0, 20, "the worker to read the job and drop it")
    assert jobs.hget(keys.run(run_id), "trainer") == b""  # never claimed
    assert run_of(a, run_id)["state"] == "stopped" and run_of(a, run_id)["step"] == 0


def test_a_web_process_that_dies_ends_its_workers_runs(web, worker, wait_until):
    home, other = web("--train", "workers"), web("--train", "workers")
    worker("--max-runs", "1")
    run_id = create(home, steps_per_second=100, max_steps=1_000_000)
    wait_until(lambda: run_of(home, run_id)["step"] > 20, 30, "the worker to train")
    viewer = Viewer(other, run_id)
    home.kill()  # nobody records the run any more: it ends, on the worker too
    end = wait_until(viewer.ended, 20, "the run's end")
    assert end["state"] == "interrupted" and "web process" in end["summary"]["reason"]
    r = control(other, run_id, "pause")
    assert r.status_code == 409
    again = create(other, steps_per_second=100, max_steps=1_000_000)  # the worker's one slot
    wait_until(lambda: run_of(other, again)["step"] > 0, 20, "the halted run's slot to free")


def test_stream_entries_carry_blocks_and_tables_exactly():
    block = {
        "step": np.arange(1, 6, dtype=np.int64),
        "loss": np.array([0.5, np.nan, np.inf, 1e-30, 2.0]),
        "grad_norm": np.arange(10, dtype=np.float32).reshape(5, 2),
    }
    back = decode_block(encode_block(block))
    assert back.keys() == block.keys()
    for name, col in block.items():
        assert back[name].dtype == col.dtype and back[name].shape == col.shape
        np.testing.assert_array_equal(back[name], col)
    table = Table(["a", "b"], "y", "classification", ["no", "yes"], np.eye(2), np.array([0.0, 1.0]))
    again = decode_table(encode_table(table))
    assert again.hash == table.hash and decode_table(encode_table(None)) is None


def test_a_web_process_told_to_stop_ends_its_runs_for_every_viewer(web, wait_until):
    a, b = web(), web()
    run_id = create(a, steps_per_second=100, max_steps=1_000_000)
    viewer = Viewer(b, run_id)
    start = time.monotonic()
    a.close()  # SIGTERM: its runs end as interrupted, and it says so before it exits
    assert time.monotonic() - start < 5.0
    assert a.proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    assert "Traceback" not in a.output()
    end = wait_until(viewer.ended, 10, "the run's end on b")
    assert end["state"] == "interrupted"
    assert run_of(b, run_id)["state"] == "interrupted"


def test_train_workers_needs_a_broker(backbeat):
    for argv in (["--train", "workers"], ["worker"]):
        done = subprocess.run([*backbeat, *argv], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done
        assert "--broker" in done.stderr


def test_without_a_broker_redis_is_never_imported():
    """`make run` needs no Redis: the embedded server and its command never load redis-py."""
    code = (
        "import sys, app.web.cli, app.web.server\n"
        "from app.web.server import create_app\n"
        "create_app()\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'redis' or 'broker' in m]\n"
        "assert not loaded, loaded"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
