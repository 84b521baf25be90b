"""Run store throughput: the embedded SQLite file against a PostgreSQL server, side by side.

    .venv/bin/python bench/store.py                      # a throwaway local PostgreSQL
    .venv/bin/python bench/store.py --url postgresql://USER@HOST:PORT/DB   # an existing one

Both stores get the same work, through the same code (app/store/base.py): one run's steps
appended in blocks of --block steps and flushed every --flush-every blocks (the server
flushes twice a second; 2,000 steps a flush is an unpaced run's), then a full read of the
run, then state changes (one transaction each) and the listing of --runs runs. The local
PostgreSQL is Debian's, from a fresh initdb, durable as shipped (fsync and synchronous
commit on); SQLite is WAL with synchronous=NORMAL, as the server opens it. Medians of
--repeats rounds.
"""

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.store import open_store  # noqa: E402
from tests.test_store import LAYERS, steps  # noqa: E402


def one_round(store, args, tag: str) -> dict[str, float]:
    run_id = f"bench-{tag}"
    store.create_run(run_id, {"bench": True}, LAYERS, time.time())
    blocks = [steps(start, args.block) for start in range(0, args.steps, args.block)]
    flushes = []
    began = time.perf_counter()
    for k, block in enumerate(blocks):
        store.append_steps(run_id, block)
        if (k + 1) % args.flush_every == 0:
            t = time.perf_counter()
            store.flush()
            flushes.append(time.perf_counter() - t)
    store.flush()
    written = time.perf_counter() - began
    t = time.perf_counter()
    assert len(store.read_steps(run_id)["step"]) == args.steps
    read = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(args.states):
        store.set_state(run_id, "running", step=i)
    state = (time.perf_counter() - t) / args.states
    t = time.perf_counter()
    for _ in range(10):
        assert len(store.list_runs()) >= args.runs
    listing = (time.perf_counter() - t) / 10
    store.delete_run(run_id)
    return {
        "write, steps/s": args.steps / written,
        "flush of a block group, ms": 1e3 * statistics.median(flushes),
        "read the whole run, ms": 1e3 * read,
        "set_state, ms": 1e3 * state,
        f"list {args.runs} runs, ms": 1e3 * listing,
    }


def measure(store, args) -> dict[str, float]:
    for i in range(args.runs):
        store.create_run(f"listed-{i}", {"i": i}, LAYERS, float(i))
    rounds = [one_round(store, args, str(r)) for r in range(args.repeats)]
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="an existing PostgreSQL database (else a throwaway server)")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--block", type=int, default=500, help="steps per append")
    p.add_argument("--flush-every", type=int, default=4, help="appends per flush")
    p.add_argument("--states", type=int, default=200, help="set_state calls timed")
    p.add_argument("--runs", type=int, default=200, help="runs in the listing")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    server = None
    url = args.url
    if url is None:
        from tests._postgres import PostgresServer, postgres_bin

        server = PostgresServer(postgres_bin(), durable=True).start()
        url = server.new_database()
    try:
        with tempfile.TemporaryDirectory() as folder:
            with closing(open_store(Path(folder))) as sqlite:
                lite = measure(sqlite, args)
            with closing(open_store(Path(folder), url)) as postgres:
                pg = measure(postgres, args)
    finally:
        if server is not None:
            server.remove()
    print(f"{args.steps:,} steps in blocks of {args.block}, a flush every {args.flush_every}")
    print(f"| {'figure':<30} | {'SQLite':>10} | {'PostgreSQL':>10} | {'PG / SQLite':>11} |")
    print(f"|{'-' * 32}|{'-' * 12}:|{'-' * 12}:|{'-' * 13}:|".replace("-:", ":"))
    for key in lite:
        ratio = pg[key] / lite[key]
        print(f"| {key:<30} | {lite[key]:>10,.2f} | {pg[key]:>10,.2f} | {ratio:>10.2f}× |")


if __name__ == "__main__":
    main()
