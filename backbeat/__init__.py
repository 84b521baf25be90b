"""Hear your own training: `run = backbeat.init(); run.watch(model); run.log({"loss": l})`.

The client needs only what the server needs; torch, lightning, keras and tensorboard
are imported only by the parts that use them.
"""

import logging
import os

from backbeat.local import answers, start_local
from backbeat.run import Run

__all__ = ["Run", "init"]
DEFAULT_SERVER = "http://127.0.0.1:8000"

log = logging.getLogger("backbeat")


def init(
    name: str | None = None,
    config: dict | None = None,
    server: str | None = None,
    start_server: bool = True,
    pausable: bool = False,
    token: str | None = None,
    measure_every: int | None = None,
) -> Run:
    """A new outside run; starts a local Backbeat when nothing answers at `server`.

    `server` defaults to $BACKBEAT_SERVER, else http://127.0.0.1:8000. `token` (or
    $BACKBEAT_TOKEN) is the presenter token of a shared server. Never raises
    because of the server: logging goes on, and steps are sent once it answers.
    Echoes and the entropy from logits are measured every `measure_every`-th step;
    by default the client picks it (a power of two) so that measuring takes at most
    1 % of the training time and comes at most 32 times a second (backbeat/cadence.py).
    """
    server = server or os.environ.get("BACKBEAT_SERVER") or DEFAULT_SERVER
    token = token or os.environ.get("BACKBEAT_TOKEN")
    run = Run(server, token, name, config, pausable, measure_every)
    if start_server and not answers(server):
        try:
            run.server_process = start_local(server)
            print(f"backbeat: started a local Backbeat at {server}/", flush=True)
        except OSError as exc:
            log.warning("backbeat: %s; steps wait for a server", exc)
    return run
