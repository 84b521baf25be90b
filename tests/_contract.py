"""Schemathesis against a real server: the harness `make test` and `make fuzz` share.

The server is uvicorn on a free port (tests/_server.py); the app is wrapped in a counter,
so the figures (requests answered, server errors) come from the server, not the fuzzer.
A janitor stops runs that have trained for a few seconds, the way a presenter would, so
fuzzed creates keep finding a free slot and fuzzing stays bounded in CPU.

`python tests/_contract.py --examples N` runs it once and prints the figures (make fuzz).
"""

import argparse
import collections
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path[:0] = [str(REPO), str(TESTS)]

from _server import ThreadedServer  # noqa: E402

from app.live.handle import ControlError, control  # noqa: E402
from app.web.asgi import HttpSendWrapper  # noqa: E402
from app.web.server import create_app  # noqa: E402
from app.web.settings import Settings  # noqa: E402

ST = Path(sys.executable).with_name("st")  # the venv's schemathesis command
STOP_AFTER = 2.0  # s a fuzzed run may train before the janitor stops it
JANITOR_PERIOD = 0.5  # s between the janitor's sweeps
MAX_RESPONSE_TIME = 30.0  # s; ST112 fails any slower answer
FUZZ_RUNS = 3  # live runs the fuzzed server trains at once (the 429 still happens)
# Schemathesis warnings that mean the document is wrong or unusable, so they fail the run.
# validation_mismatch too: positive step batches are kept to the rules between columns
# (tests/schemathesis_hooks.py), so every operation takes some of what the schema allows.
FAIL_ON_WARNINGS = (
    "validation_mismatch",
    "unresolvable_reference",
    "unsupported_regex",
    "method_not_allowed",
    "base_url_mismatch",
    "missing_deserializer",
)


class ErrorLog(logging.Handler):
    """Collects what the server logs at ERROR or above while it is fuzzed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


class Counting(HttpSendWrapper):
    """ASGI wrapper counting every HTTP answer by status; 5xx ones are remembered in full."""

    def __init__(self, app) -> None:
        super().__init__(app)
        self.statuses: collections.Counter[int] = collections.Counter()
        self.server_errors: list[str] = []
        self.lock = threading.Lock()

    def wrap(self, scope, send):
        async def counted(message) -> None:
            if message["type"] == "http.response.start":
                with self.lock:
                    self.statuses[message["status"]] += 1
                    if message["status"] >= 500:
                        self.server_errors.append(f"{scope['method']} {scope['path']}")
            await send(message)

        return counted


@dataclass
class Outcome:
    returncode: int
    output: str
    statuses: dict[int, int]
    requests: int
    server_errors: list[str] = field(default_factory=list)
    logged_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def janitor(srv: ThreadedServer, stop: threading.Event) -> None:
    """Stop runs that have trained longer than STOP_AFTER, as a presenter would."""
    manager = srv.app.app.state.manager
    while not stop.wait(JANITOR_PERIOD):
        with contextlib.suppress(Exception):  # the server may be shutting down
            live = srv.call(lambda: list(manager.runs.values()))
            for run in live:
                if run.handle.alive and time.time() - run.created > STOP_AFTER:
                    with contextlib.suppress(ControlError):
                        control(run.handle, "stop")


@contextlib.contextmanager
def fuzzed_server(data_dir: Path) -> Iterator[tuple[ThreadedServer, Counting]]:
    settings = Settings(data_dir=data_dir, max_concurrent_runs=FUZZ_RUNS, max_stored_runs=100_000)
    counter = Counting(create_app(settings))
    stop = threading.Event()
    with ThreadedServer(counter) as srv:
        sweeper = threading.Thread(target=janitor, args=(srv, stop), daemon=True)
        sweeper.start()
        try:
            yield srv, counter
        finally:
            stop.set()
            sweeper.join(30)


def schemathesis_command(
    url: str, config: Path, examples: int, seed: int | None, phases: str
) -> list[str]:
    """`st run` with every check, both generation modes and the given phases."""
    command = [str(ST), "--config-file", str(config), "--no-color", "run", f"{url}/openapi.json"]
    command += ["--checks", "all", "--mode", "all", "--phases", phases]
    command += ["--max-examples", str(examples), "--workers", "1"]
    # generous for a loaded machine: a control waits up to 10 s for a busy training process
    command += ["--request-timeout", "60", "--max-response-time", str(MAX_RESPONSE_TIME)]
    command += ["--generation-database", "none"]
    return command + (["--seed", str(seed)] if seed is not None else [])


def run_schemathesis(
    data_dir: Path,
    examples: int,
    seed: int | None = None,
    phases: str = "examples,coverage,fuzzing,stateful",
    timeout: float = 3600,
) -> Outcome:
    """Fuzz a fresh server with every check; the outcome carries the server's own counts."""
    config = data_dir / "schemathesis.toml"
    config.write_text(f"[warnings]\nfail-on = {list(FAIL_ON_WARNINGS)!r}\n".replace("'", '"'))
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)]),
    }
    began = time.monotonic()
    logged = ErrorLog()
    logging.getLogger("backbeat").addHandler(logged)
    try:
        with fuzzed_server(data_dir / "data") as (srv, counter):
            command = schemathesis_command(srv.url, config, examples, seed, phases)
            done = subprocess.run(
                command, cwd=data_dir, env=env, capture_output=True, text=True, timeout=timeout
            )
            with counter.lock:
                statuses = dict(sorted(counter.statuses.items()))
                errors = list(counter.server_errors)
    finally:
        logging.getLogger("backbeat").removeHandler(logged)
    return Outcome(
        done.returncode,
        done.stdout + done.stderr,
        statuses,
        sum(statuses.values()),
        errors,
        logged.records,
        time.monotonic() - began,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="cases per operation a phase")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_schemathesis(Path(tmp), args.examples, args.seed)
    print(outcome.output)
    print(f"server answered {outcome.requests:,} fuzzer requests in {outcome.seconds:.0f} s")
    print(f"statuses: {outcome.statuses}")
    print(f"server errors (5xx): {len(outcome.server_errors)} {outcome.server_errors[:10]}")
    print(f"errors logged: {len(outcome.logged_errors)} {outcome.logged_errors[:10]}")
    clean = not (outcome.returncode or outcome.server_errors or outcome.logged_errors)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
