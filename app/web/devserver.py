"""A Backbeat server in a process of its own, and waiting for conditions (tests, benches, scripts).

Nothing here is used by the server itself; it lives in the package so that tests/,
bench/ and scripts/ (and a user's own scripts) share one way to start a server and wait.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

START_TIMEOUT = 30.0  # s a server may take to answer /api/health (a loaded machine is slow)
STOP_TIMEOUT = 15.0  # s a server may take to exit after SIGTERM before it is killed
POLL = 0.02  # s between looks at a condition


class NotYet(AssertionError):
    """A condition did not hold within its deadline (an AssertionError, so tests fail)."""


def wait_until(predicate: Callable, timeout: float = 10.0, what: str = "the condition"):
    """Poll until `predicate()` is truthy and return its value; raise NotYet after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise NotYet(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL)
    return value


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backbeat_command() -> list[str]:
    """The `backbeat` script beside this interpreter if installed, else the module."""
    script = Path(sys.executable).with_name("backbeat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.web.cli"]


class ServerProcess:
    """A server process on a port, its output in files in `log_dir` (no pipe can fill and stall it).

    `argv` may contain `{port}`. `kill()` then `start()` restarts it on the same port, as a
    crash and a restart would.
    """

    def __init__(
        self,
        argv: list[str],
        log_dir: Path,
        port: int | None = None,
        env: dict | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url, self.ws_url = f"http://127.0.0.1:{self.port}", f"ws://127.0.0.1:{self.port}"
        self.argv = [a.format(port=self.port) for a in argv]
        self.stdout = Path(log_dir) / f"out-{self.port}.txt"
        self.stderr = Path(log_dir) / f"err-{self.port}.txt"
        self.env, self.cwd = env, cwd
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> "ServerProcess":
        with open(self.stdout, "ab") as out, open(self.stderr, "ab") as err:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdout=out,
                stderr=err,
                env={**os.environ, **(self.env or {})},
            )
        return self

    def output(self) -> str:
        """Everything the server has printed so far, stdout then stderr."""
        files = (self.stdout, self.stderr)
        return "".join(f.read_text(errors="replace") for f in files if f.exists())

    def healthy(self) -> bool:
        """True once /api/health answers; raises if the process has already exited."""
        if self.proc.poll() is not None:
            raise NotYet(f"the server exited with {self.proc.returncode}:\n{self.output()}")
        try:
            with urllib.request.urlopen(f"{self.url}/api/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> "ServerProcess":
        wait_until(self.healthy, timeout, f"{self.url}/api/health")
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to the websockets, as when a laptop's server dies."""
        self.proc.kill()
        self.proc.wait(STOP_TIMEOUT)

    def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def __enter__(self) -> "ServerProcess":
        return self.start().wait_healthy()

    def __exit__(self, *exc) -> None:
        self.close()
