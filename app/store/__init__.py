"""Run history: configs, states, every step's metrics and events (SQLite by default).

`RunStore` is the embedded SQLite store under the data folder; `open_store` also opens a
shared PostgreSQL database (`--store postgresql://...`, README "Scaling out"), whose
driver is imported only then. Both implement app/store/base.py's `Store`.
"""

from pathlib import Path
from urllib.parse import urlsplit

from app.store.base import Store, StoreError
from app.store.sqlite import DB_NAME, RunStore

__all__ = [
    "DB_NAME",
    "RunStore",
    "Store",
    "StoreError",
    "hold_store",
    "open_store",
    "redacted",
    "store_url_problem",
]

SCHEMES = ("postgresql://", "postgres://")


def store_url_problem(url: str) -> str | None:
    """Why `--store URL` cannot work here (not a PostgreSQL URL, psycopg missing), or None."""
    if not url.startswith(SCHEMES):
        return f"--store takes postgresql://USER@HOST:PORT/DB, not {url.split('://')[0]}://..."
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "--store postgresql://... needs psycopg: pip install 'backbeat[postgres]'"
    return None


def redacted(url: str) -> str:
    """The URL to show: scheme, user, host, port and database; never a password or options."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    hosts = parts.netloc.rpartition("@")[2]  # libpq allows several: h1:5432,h2:5432
    return f"{parts.scheme}://{user}{hosts}{parts.path}"


def open_store(data_dir: Path, url: str | None = None, *, max_runs: int = 200) -> Store:
    """The run store: SQLite in `data_dir`, or the PostgreSQL database at `url` if given."""
    if url is None:
        return RunStore(data_dir, max_runs=max_runs)
    if why := store_url_problem(url):
        raise StoreError(why)
    from app.store.postgres import PostgresStore  # late: psycopg only for --store

    return PostgresStore(url, max_runs=max_runs)


def hold_store(url: str, *, shared: bool):
    """Lock the PostgreSQL store at `url` for this server's life (app/store/postgres.py);
    the returned connection's close() lets go."""
    from app.store.postgres import hold  # late: psycopg only for --store

    return hold(url, shared=shared)
