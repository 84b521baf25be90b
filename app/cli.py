"""The `backbeat` command: start the server, print the URL, open the browser."""

import argparse
import errno
import socket
import sys
import threading
import webbrowser
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; SQLite's own locking still applies
    fcntl = None

import uvicorn

from app.security import new_token
from app.settings import Settings
from app.store import RunStore, StoreError


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Settings()
    p = argparse.ArgumentParser(prog="backbeat", description="Hear and see a network learn.")
    p.add_argument("--host", default=defaults.host, help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=defaults.port, help="port (default 8000)")
    p.add_argument("--data", type=Path, default=defaults.data_dir, help="run history folder")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument(
        "--share",
        action="store_true",
        help="serve the room: bind all interfaces; only the presenter link controls runs",
    )
    p.add_argument(
        "--allow-origin", action="append", default=[], help="extra websocket origin to accept"
    )
    p.add_argument(
        "--max-runs",
        type=int,
        default=defaults.max_concurrent_runs,
        help="runs trained at once (default 2)",
    )
    return p.parse_args(argv)


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno not in (errno.EADDRINUSE, errno.EACCES)
    return True


def lan_address() -> str:
    """The address other devices in the room reach this machine on (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def lock_data_folder(data: Path) -> IO | None:
    """One server per data folder: a second would mark the first one's live runs interrupted."""
    if fcntl is None:
        return None
    try:
        handle = open(data / "backbeat.lock", "a")  # noqa: SIM115 - held open while serving
    except OSError as exc:
        raise StoreError(f"cannot write in data folder {data}: {exc.strerror}") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise StoreError(f"data folder {data} is in use by another Backbeat server") from exc
    return handle


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from app.server import create_app  # late: --help stays instant

    host = "0.0.0.0" if args.share and args.host == "127.0.0.1" else args.host
    if not port_free(host, args.port):
        print(
            f"backbeat: port {args.port} on {host} is already in use; try --port {args.port + 1}",
            file=sys.stderr,
        )
        return 2
    try:  # open the history once before serving, so a bad folder is one clear line
        RunStore(args.data).close()
        lock = lock_data_folder(args.data)
    except StoreError as exc:
        print(f"backbeat: {exc}", file=sys.stderr)
        return 1
    token = new_token() if args.share else None
    settings = Settings(
        host=host,
        port=args.port,
        data_dir=args.data,
        max_concurrent_runs=args.max_runs,
        presenter_token=token,
        allowed_origins=tuple(args.allow_origin),
    )
    local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{local}:{args.port}/"
    if token:
        room = f"http://{lan_address()}:{args.port}/"
        url = f"{url}?token={token}"
        print(f"Backbeat is shared with the room (history in {args.data}; Ctrl+C stops)")
        print(f"  viewers:   {room}")
        print(f"  presenter: {url}   <- keep this one to yourself", flush=True)
    else:
        print(f"Backbeat is playing at {url}  (history in {args.data}; Ctrl+C stops)", flush=True)
    if not args.no_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=args.port,
        log_level="warning",
        access_log=False,  # request lines would carry the presenter token
        ws_max_size=settings.max_message_bytes,
        ws_ping_interval=10.0,
        ws_ping_timeout=10.0,
        # compression is per connection: it would redo, per viewer, the work `hub` does once
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=3,
    )
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C once it has shut down cleanly
        pass
    finally:
        if lock is not None:
            lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
