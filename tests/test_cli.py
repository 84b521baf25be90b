"""The `backbeat` command starts a real uvicorn, and says so plainly when it cannot."""

import signal
import socket
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import httpx

from app import __version__

REPO = Path(__file__).resolve().parents[1]


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


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on `port` (Linux /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_share_respects_the_host_given_and_says_what_is_bound(spawn, backbeat, tmp_path):
    argv = [*backbeat, "--share", "--host", "127.0.0.1", "--port", "{port}", "--no-browser"]
    server = spawn([*argv, "--data", str(tmp_path / "d")]).wait_healthy()
    out = server.stdout.read_text()
    assert f"bound to:  127.0.0.1:{server.port} (this address only)" in out
    assert f"viewers:   http://127.0.0.1:{server.port}/" in out
    assert listening_addresses(server.port) == {"127.0.0.1"}


def test_share_without_a_host_binds_every_interface(spawn, backbeat, tmp_path):
    argv = [*backbeat, "--share", "--port", "{port}", "--no-browser"]
    server = spawn([*argv, "--data", str(tmp_path / "d")]).wait_healthy()
    assert f"bound to:  0.0.0.0:{server.port} (every interface" in server.stdout.read_text()
    assert listening_addresses(server.port) == {"0.0.0.0"}


def test_make_share_runs_backbeat_share():
    dry = subprocess.run(
        ["make", "-n", "share", "PORT=8123"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "backbeat --share --host 0.0.0.0 --port 8123 --no-browser" in dry
