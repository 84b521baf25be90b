"""Finding a Backbeat server, or starting one in the background when none answers."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

HEALTH_TIMEOUT = 0.5  # s a server has to answer /api/health
START_TIMEOUT = 30.0  # s a freshly started server has to come up
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def answers(server: str, timeout: float = HEALTH_TIMEOUT) -> bool:
    try:
        with urllib.request.urlopen(f"{server.rstrip('/')}/api/health", timeout=timeout) as r:
            return r.status == 200
    except (OSError, ValueError):
        return False


def start_local(server: str, data: Path | None = None) -> subprocess.Popen:
    """`backbeat --no-browser` on the server's port, in its own session so it outlives us.

    It uses the same data folder as the `backbeat` command (BACKBEAT_DATA, else the
    per-user folder), so the run stays listed and replayable afterwards.
    """
    parts = urlsplit(server)
    host, port = parts.hostname or "127.0.0.1", parts.port or 8000
    if host not in LOCAL_HOSTS:
        raise OSError(f"nothing answers at {server}, and only a local server can be started")
    args = [sys.executable, "-m", "app.web.cli", "--host", host, "--port", str(port)]
    args += ["--no-browser"] + (["--data", str(data)] if data else [])
    log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    log = open(log_dir / f"backbeat-{port}.log", "ab")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if answers(server):
            return process
        if process.poll() is not None:
            raise OSError(
                f"the local Backbeat exited with code {process.returncode}; see {log.name}"
            )
        time.sleep(0.2)
    process.kill()
    raise OSError(f"the local Backbeat did not answer within {START_TIMEOUT:g} s; see {log.name}")
