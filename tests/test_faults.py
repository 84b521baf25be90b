"""Faults on stage (issue 6): crashes, bad data folders, divergence, churn and shutdown."""

import errno
import json
import multiprocessing
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from _server import ThreadedServer, free_port, raw_handshake
from websockets.sync.client import connect

from app.store import RunStore
from app.web.server import create_app
from app.web.settings import Settings

SMALL_RUN = dict(dataset="circle", n_samples=100, hidden=[4], max_steps=10_000_000)
SMALL_RUN["stop_at_convergence"] = False  # plays on past its chime
UNPACED = {**SMALL_RUN, "steps_per_second": None}


def run_threads() -> list:
    """Training workers still alive: run processes, and their runner threads in this process."""
    threads = [t for t in threading.enumerate() if t.name.startswith("run-") and t.is_alive()]
    children = [p for p in multiprocessing.active_children() if p.name.startswith("run-")]
    return threads + children


def cli_args(backbeat: list[str], data: Path, port: str = "{port}") -> list[str]:
    return [*backbeat, "--port", port, "--data", str(data), "--no-browser"]


# -- kill -9 and restart ---------------------------------------------------------------------


def test_kill_9_loses_at_most_the_last_second(spawn, backbeat, tmp_path, wait_until):
    data = tmp_path / "data"
    server = spawn(cli_args(backbeat, data)).wait_healthy()
    url = server.url
    done = httpx.post(f"{url}/api/runs", json={**UNPACED, "max_steps": 300}).json()["id"]
    wait_until(lambda: httpx.get(f"{url}/api/runs/{done}").json()["state"] == "finished")
    cut = httpx.post(f"{url}/api/runs", json=UNPACED).json()["id"]

    def progress() -> tuple[float, int]:
        step = httpx.get(f"{url}/api/runs/{cut}").json()["step"]
        return time.monotonic(), step

    t1, s1 = wait_until(lambda: (p := progress())[1] > 0 and p)
    time.sleep(1.5)
    t2, s2 = progress()
    os.kill(server.proc.pid, signal.SIGKILL)  # at once: the last step seen is s2
    server.proc.wait(10)
    rate = (s2 - s1) / (t2 - t1)  # steps a second
    assert rate > 100

    restarted = spawn(cli_args(backbeat, data)).wait_healthy()
    listed = {r["id"]: r for r in httpx.get(f"{restarted.url}/api/runs").json()}
    assert listed[done]["state"] == "finished" and listed[cut]["state"] == "interrupted"
    store = RunStore(data)
    try:
        finished = store.read_steps(done)["step"]
        assert finished.tolist() == list(range(1, 301))
        tail = store.read_steps(cut, start=max(0, int(s2 - 3 * rate)))["step"]
    finally:
        store.close()
    last = int(tail[-1])
    assert last >= s2 - rate * 1.0, f"lost {(s2 - last) / rate:.2f} s of training"
    assert listed[cut]["step"] >= last
    assert (tail == list(range(int(tail[0]), last + 1))).all()  # no hole before the cut
    r = httpx.get(f"{restarted.url}/api/runs/{cut}/metrics", params={"every": 10_000})
    assert r.status_code == 200 and r.json()["beats"]["step"][0] == 1


# -- bad data folders ------------------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (root only; skips elsewhere) to make real read-only and full disks."""
    mounted: list[Path] = []

    def mount(size: str = "1m") -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        if not shutil.which("mount"):
            pytest.skip("no mount command")
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(folder: Path) -> None:
    """Fill the disk to the last byte (the server's own writes may have filled it already)."""
    try:
        with open(folder / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc


def refused(backbeat: list[str], data: Path) -> str:
    """Run the CLI on `data`; it must exit non-zero with one readable line on stderr."""
    r = subprocess.run(
        cli_args(backbeat, data, str(free_port())), capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("backbeat: "), r.stderr
    return lines[0]


def test_data_folder_that_is_a_file(backbeat, tmp_path):
    (tmp_path / "data").write_text("not a folder")
    line = refused(backbeat, tmp_path / "data")
    assert "cannot create data folder" in line and str(tmp_path / "data") in line


def test_data_folder_that_cannot_be_created(backbeat, tmp_path):
    (tmp_path / "file").write_text("")  # even root cannot create a folder under a file
    line = refused(backbeat, tmp_path / "file" / "data")
    assert "cannot create data folder" in line and "Not a directory" in line


def test_corrupt_database(backbeat, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "backbeat.db").write_bytes(b"definitely not SQLite " * 100)
    line = refused(backbeat, tmp_path / "data")
    assert "not a valid database" in line and "backbeat.db" in line


def test_database_locked_by_another_process(backbeat, tmp_path):
    RunStore(tmp_path).close()
    holder = sqlite3.connect(tmp_path / "backbeat.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert "is locked by another process" in refused(backbeat, tmp_path)
    finally:
        holder.close()


def test_data_folder_in_use_by_another_server(spawn, backbeat, tmp_path):
    first = spawn(cli_args(backbeat, tmp_path)).wait_healthy()
    run_id = httpx.post(f"{first.url}/api/runs", json=SMALL_RUN).json()["id"]
    assert "in use by another Backbeat server" in refused(backbeat, tmp_path)
    assert httpx.get(f"{first.url}/api/runs/{run_id}").json()["state"] == "running"
    store = RunStore(tmp_path)
    try:
        assert store.get_run(run_id)["state"] != "interrupted"  # the second did not touch it
    finally:
        store.close()


def test_read_only_data_folder(backbeat, tmpfs):
    mnt = tmpfs()
    RunStore(mnt / "old").close()
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    assert "read-only" in refused(backbeat, mnt / "old")
    assert "Read-only file system" in refused(backbeat, mnt / "new")


def test_full_disk_at_startup(backbeat, tmpfs):
    mnt = tmpfs("256k")
    fill(mnt)
    assert "disk is full" in refused(backbeat, mnt / "data")


def test_disk_filling_while_serving_keeps_the_server_up(spawn, backbeat, tmpfs, wait_until):
    mnt = tmpfs("8m")
    server = spawn(cli_args(backbeat, mnt / "data")).wait_healthy()
    brisk = {**SMALL_RUN, "steps_per_second": 2000}  # ~80 KB of history a second
    run_id = httpx.post(f"{server.url}/api/runs", json=brisk).json()["id"]
    fill(mnt)
    wait_until(lambda: "could not write run history" in server.output(), 10, "a write error")
    time.sleep(1.5)  # three more failed flushes
    assert server.proc.poll() is None
    assert httpx.get(f"{server.url}/api/health").status_code == 200
    assert httpx.get(f"{server.url}/api/runs").status_code == 200
    out = server.output()
    assert out.count("could not write run history") == 1  # said once, not every 0.5 s
    assert "disk is full" in out.split("could not write run history")[1].splitlines()[0]
    (mnt / "filler").unlink()  # space again: the buffered metrics are written
    wait_until(lambda: "run history written again" in server.output(), 10, "the recovery")
    r = httpx.post(f"{server.url}/api/runs/{run_id}/control", json={"action": "stop"})
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    steps = httpx.get(f"{server.url}/api/runs/{run_id}/metrics").json()["beats"]["step"]
    assert steps == list(range(1, len(steps) + 1))  # nothing lost while the disk was full
    server.proc.terminate()
    server.proc.wait(10)
    assert "Application shutdown failed" not in server.output()


# -- divergence ------------------------------------------------------------------------------


def test_divergence_ends_the_run_and_nothing_else(api, wait_until):
    exploding = dict(dataset="plane", activation="relu", learning_rate=10, steps_per_second=None)
    run_id = api.create(**exploding, max_steps=100_000)
    run = api.wait_state(run_id, "diverged", "finished", "failed")
    assert run["state"] == "diverged" and run["summary"]["reason"]
    channel = api.client.app.state.manager.get(run_id).channel
    wait_until(lambda: channel.ended, 5, "the stream to end")
    assert api.client.get("/api/health").json()["status"] == "ok"
    metrics = api.client.get(f"/api/runs/{run_id}/metrics")
    assert metrics.status_code == 200 and "NaN" not in metrics.text
    with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        hello = ws.receive_json()
        assert hello["run"]["state"] == "diverged"
        assert any(e["type"] == "alarm" for e in hello["events"])
    healthy = api.create(**{**SMALL_RUN, "max_steps": 50, "steps_per_second": None})
    assert api.wait_state(healthy, "finished")["step"] == 50


# -- churn -----------------------------------------------------------------------------------


def kill(sock: socket.socket) -> None:
    """Close with a TCP reset, as a crashed tab or a dropped Wi-Fi link does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_1000_viewer_connect_kill_cycles_leave_no_trace(tmp_path, wait_until):
    settings = Settings(data_dir=tmp_path, max_connections_per_address=10_000)
    app = create_app(settings)
    with ThreadedServer(app) as srv:
        run_id = httpx.post(f"{srv.url}/api/runs", json={**SMALL_RUN, "steps_per_second": 120})
        run_id = run_id.json()["id"]
        channel = app.state.manager.get(run_id).channel
        time.sleep(0.3)
        baseline = srv.task_count()
        path = f"/ws/runs/{run_id}"
        for i in range(1000):
            sock = raw_handshake(srv.port, path)
            if i % 2:  # half read the upgrade and the hello first; half vanish at once
                sock.settimeout(5)
                assert sock.recv(65536).startswith(b"HTTP/1.1 101")
            kill(sock)
        wait_until(lambda: not channel.viewers and not app.state.limits.open, 10, "no viewers")
        wait_until(lambda: srv.task_count() <= baseline, 10, f"{baseline} tasks")
        assert channel.evictions == 0
        with connect(f"{srv.ws_url}{path}") as ws:  # and the server still serves
            assert json.loads(ws.recv(5))["type"] == "hello"


# -- shutdown --------------------------------------------------------------------------------


def test_lifespan_exit_stops_every_training_thread_within_2s(serve, tmp_path):
    data = tmp_path / "data"
    with serve(data_dir=data, max_concurrent_runs=3) as api:
        ids = [
            api.create(**UNPACED),
            api.create(**SMALL_RUN, steps_per_second=5),
            api.create(**SMALL_RUN, start_paused=True),
        ]
        assert len(run_threads()) == 3
        start = time.monotonic()
    assert time.monotonic() - start < 2.0
    assert run_threads() == []
    with serve(data_dir=data) as api:
        assert {api.run(i)["state"] for i in ids} == {"interrupted"}


def test_sigterm_stops_the_server_and_its_runs_promptly(spawn, backbeat, tmp_path, wait_until):
    data = tmp_path / "data"
    server = spawn(cli_args(backbeat, data)).wait_healthy()
    ids = [httpx.post(f"{server.url}/api/runs", json=UNPACED).json()["id"] for _ in range(2)]
    with connect(f"ws://127.0.0.1:{server.port}/ws/runs/{ids[0]}") as ws:  # a viewer watching
        ws.recv(5)
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(10)
    assert time.monotonic() - start < 3.0
    assert server.proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    assert "Traceback" not in server.output()
    store = RunStore(data)
    try:  # recorded by the shutdown itself, not by the next start's crash recovery
        assert {store.get_run(i)["state"] for i in ids} == {"interrupted"}
        assert all(store.get_run(i)["summary"]["state"] == "interrupted" for i in ids)
    finally:
        store.close()
    restarted = spawn(cli_args(backbeat, data)).wait_healthy()
    states = {r["id"]: r["state"] for r in httpx.get(f"{restarted.url}/api/runs").json()}
    assert states == dict.fromkeys(ids, "interrupted")
