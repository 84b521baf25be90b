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

from app.live.ingest import INGEST_MESSAGE_BYTES
from app.store import StoreError, hold_store, open_store, redacted, store_url_problem
from app.web.listen import listening_socket
from app.web.security import new_token
from app.web.settings import Settings


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Settings()
    p = argparse.ArgumentParser(prog="backbeat", description="Hear and see a network learn.")
    p.add_argument(
        "--host",
        default=None,
        help=f"interface to bind (default {defaults.host}; with --share {SHARE_HOST})",
    )
    p.add_argument("--port", type=int, default=defaults.port, help="port (default 8000)")
    p.add_argument("--data", type=Path, default=defaults.data_dir, help="run history folder")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument(
        "--share",
        action="store_true",
        help="serve the room: bind all interfaces unless --host says otherwise; "
        "only the presenter link controls runs",
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
    p.add_argument(
        "--broker",
        default=None,
        metavar="redis://HOST:PORT/DB",
        help="serve the same runs as other Backbeat processes through this Redis "
        "(README, 'Scaling out'); they share the data folder on one host",
    )
    p.add_argument(
        "--store",
        default=None,
        metavar="postgresql://USER@HOST:PORT/DB",
        help="keep the run history in this PostgreSQL database, not in SQLite under --data: "
        "processes on several hosts then share it (pip install 'backbeat[postgres]')",
    )
    p.add_argument(
        "--train",
        choices=("here", "workers"),
        default="here",
        help="with --broker: train new runs in this process (default) or queue them "
        "for `backbeat worker` processes",
    )
    args = p.parse_args(argv)
    if args.train == "workers" and not args.broker:
        p.error("--train workers needs --broker")
    return args


def broker_missing() -> str | None:
    """Why --broker cannot work here (redis-py not installed), or None."""
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        return "--broker needs redis-py: pip install 'backbeat[broker]'"
    return None


SHARE_HOST = "0.0.0.0"  # every IPv4 interface: the room's devices reach this laptop
EVERY_INTERFACE = ("0.0.0.0", "::")


def bind_host(host: str | None, share: bool) -> str:
    """The host given wins; otherwise --share binds every interface and a private run loopback."""
    if host is not None:
        return host
    return SHARE_HOST if share else Settings().host


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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["import"]:  # `backbeat import PATH`: old logs become a stored run
        from backbeat.importer import main as import_logs

        return import_logs(argv[1:])
    if argv[:1] == ["worker"]:  # `backbeat worker --broker URL`: train queued runs
        if why := broker_missing():
            print(f"backbeat: {why}", file=sys.stderr)
            return 2
        from app.broker.worker import main as worker

        return worker(argv[1:])
    args = parse(argv)
    if args.broker and (why := broker_missing()):
        print(f"backbeat: {why}", file=sys.stderr)
        return 2
    if args.store and (why := store_url_problem(args.store)):
        print(f"backbeat: {why}", file=sys.stderr)
        return 2
    from app.web.server import create_app  # late: --help stays instant

    host = bind_host(args.host, args.share)
    if not port_free(host, args.port):
        print(
            f"backbeat: port {args.port} on {host} is already in use; try --port {args.port + 1}",
            file=sys.stderr,
        )
        return 2
    try:  # open the history once before serving, so a bad folder is one clear line
        open_store(args.data, args.store).close()
        if args.store:  # one server per store unless they all share a broker
            lock = hold_store(args.store, shared=bool(args.broker))
        else:  # on a broker several processes share the folder (SQLite locks each write)
            lock = None if args.broker else lock_data_folder(args.data)
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
        broker=args.broker,
        train=args.train,
        store=args.store,
    )
    history = redacted(args.store) if args.store else args.data
    local = "127.0.0.1" if host in EVERY_INTERFACE else host
    url = f"http://{local}:{args.port}/"
    reach = (
        "every interface: other devices can connect"
        if host in EVERY_INTERFACE
        else "this address only"
    )
    if token:
        room = f"http://{lan_address() if host in EVERY_INTERFACE else local}:{args.port}/"
        url = f"{url}?token={token}"
        print(f"Backbeat is shared with the room (history in {history}; Ctrl+C stops)")
        print(f"  bound to:  {host}:{args.port} ({reach})")
        print(f"  viewers:   {room}")
        print(f"  presenter: {url}   <- keep this one to yourself", flush=True)
    else:
        print(f"Backbeat is playing at {url}  (history in {history}; Ctrl+C stops)")
        print(f"  bound to:  {host}:{args.port} ({reach})", flush=True)
    if not args.no_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=args.port,
        log_level="warning",
        access_log=False,  # request lines would carry the presenter token
        ws_max_size=INGEST_MESSAGE_BYTES,  # viewers' own messages are held to 4 KiB per session
        ws_ping_interval=10.0,
        ws_ping_timeout=10.0,
        # compression is per connection: it would redo, per viewer, the work `hub` does once
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=3,
    )
    try:
        uvicorn.Server(config).run(sockets=[listening_socket(host, args.port)])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C once it has shut down cleanly
        pass
    finally:
        if lock is not None:
            lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
