"""Server settings in one place: command-line flags and BACKBEAT_* environment variables."""

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


def default_data_dir() -> Path:
    """Per-user data folder: $BACKBEAT_DATA, else $XDG_DATA_HOME/backbeat, else ~/.local/share."""
    if env := os.environ.get("BACKBEAT_DATA"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "backbeat"


class Settings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Field(default_factory=default_data_dir)
    max_concurrent_runs: int = Field(
        default_factory=lambda: int(os.environ.get("BACKBEAT_MAX_RUNS", "2")), ge=1, le=64
    )
    max_stored_runs: int = Field(
        default_factory=lambda: int(os.environ.get("BACKBEAT_MAX_STORED_RUNS", "200")), ge=1
    )
    store_flush_interval: float = 0.5  # s between writes of buffered metrics to SQLite
    presenter_token: str | None = None  # set by --share: only its holders control runs
    allowed_origins: tuple[str, ...] = ()  # extra websocket origins besides the page's own
    max_connections: int = 500  # open websockets in total
    max_connections_per_address: int = 20  # open websockets from one client address
    max_body_bytes: int = 64 * 1024  # largest HTTP request body
    max_message_bytes: int = 4096  # largest websocket message a client may send
    message_rate: float = 10.0  # client websocket messages a second (burst: twice that)
    heartbeat_interval: float = 8.0  # s between the server's pings
    heartbeat_timeout: float = 20.0  # s of client silence before the socket is dropped
    broker: str | None = None  # redis://HOST:PORT/DB: serve runs with other processes
    train: Literal["here", "workers"] = "here"  # with a broker: who trains new runs
    store: str | None = None  # postgresql://...: shared run history, else SQLite in data_dir
