"""The `backbeat` command starts a real uvicorn, and says so plainly when it cannot."""

import signal
import socket
import sqlite3
from contextlib import closing

import httpx

from app import __version__


def test_backbeat_serves_the_api_and_stops_on_ctrl_c(spawn, backbeat, tmp_path):
    data = tmp_path / "cli-data"
    server = spawn([*backbeat, "--port", "{port}", "--no-browser", "--data", str(data)])
    server.wait_healthy()
    health = httpx.get(f"{server.url}/api/health", timeout=5).json()
    assert health == {"status": "ok", "version": __version__, "connections": 0}
    r = httpx.post(f"{server.url}/api/runs", json={"steps_per_second": 20.0})
    assert r.status_code == 201
    assert f"http://127.0.0.1:{server.port}/" in server.stdout.read_text()

    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(15) == 0
    assert "Traceback" not in server.output()
    with closing(sqlite3.connect(data / "backbeat.db")) as db:  # the lifespan shut down cleanly
        (state,) = db.execute("SELECT state FROM runs WHERE id = ?", (r.json()["id"],)).fetchone()
    assert state == "interrupted"


def test_a_port_in_use_is_one_clear_line_and_a_failed_exit(spawn, backbeat, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = spawn(
            [*backbeat, "--port", str(port), "--no-browser", "--data", str(tmp_path / "d")],
            port=port,
        )
        code = server.proc.wait(30)
    assert code != 0
    lines = server.stderr.read_text().strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0] and str(port) in lines[0]
    assert "Traceback" not in server.output()
