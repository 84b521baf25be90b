"""The run store keeps every run and step across restarts and crashes, and fails readably.

The contract's tests run on both stores: SQLite in a data folder and PostgreSQL (a real
server, tests/_postgres.py, a database per test). Failures of the file are SQLite's own;
PostgreSQL's are in tests/test_postgres.py.
"""

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from app.engine.steps import SCHEMA
from app.engine.tables import Table
from app.store import RunStore, StoreError, codec, open_store
from app.store import base as store_module
from app.store.tables import DuplicateName, TableStore, TooManySets
from tests._postgres import postgres_server  # noqa: F401 - the session's server

LAYERS = [2, 8, 8, 1]  # three weight layers -> per-layer columns of width 3
REPO = Path(__file__).resolve().parents[1]


def steps(start: int, n: int, width: int = 3) -> dict[str, np.ndarray]:
    """Steps [start, start + n) like the training loop's, each a pure function of its step."""
    step = np.arange(start, start + n, dtype=np.int64)
    wobble = np.sin(step * 1.618)  # irregular values, the same whichever block they come in
    per_layer = np.abs(np.outer(wobble, np.arange(1, width + 1))) + 1e-3
    cols = {
        "step": step,
        "t": 1_732_700_000.0 + step / 3e4 + wobble * 1e-6,  # needs float64 to survive
        "epoch": step // 50,
        "loss": np.exp(-step / 500) + 0.01 * wobble,
        "accuracy": (wobble + 1) / 2,
        "entropy": np.cos(step * 0.37) ** 2,
        "crescendo": np.clip(1 - np.exp(-step / 500), 0, 1),
        "act_rms": per_layer,
        "grad_norm": per_layer * 1e-3,
        "update_ratio": per_layer * 1e-7,
    }
    for at, value in enumerate([np.nan, np.inf, -np.inf]):
        cols["loss"][step == at] = value
    cols["grad_norm"][step == 1] = [np.nan, np.inf, -np.inf][:width]
    return cols


def as_stored(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the store promises back: step/t/epoch exact, metrics rounded through float32."""
    exact = ("step", "t", "epoch")
    return {
        k: v if k in exact else v.astype(np.float32).astype(np.float64) for k, v in cols.items()
    }


def assert_steps_equal(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want) == set(SCHEMA)
    for name, col in as_stored(want).items():
        assert got[name].dtype == col.dtype, name
        assert got[name].shape == col.shape, name
        np.testing.assert_array_equal(got[name], col, err_msg=name)  # NaN == NaN here


def concat(*blocks):
    return {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}


class Backing:
    """Where a test's stores live: a data folder (SQLite) or a database URL (PostgreSQL)."""

    def __init__(self, folder: Path, url: str | None = None) -> None:
        self.folder, self.url = folder, url

    def open(self, **kwargs):
        return open_store(self.folder, self.url, **kwargs)


@pytest.fixture(params=["sqlite", "postgres"])
def backing(request, tmp_path):
    if request.param == "sqlite":
        yield Backing(tmp_path)
        return
    server = request.getfixturevalue("postgres_server")
    url = server.new_database()
    yield Backing(tmp_path, url)
    server.drop_database(url)


@pytest.fixture
def store(backing):
    s = backing.open()
    yield s
    s.close()


def test_steps_round_trip_exactly_with_nan_inf_dtypes_and_layer_shapes(store, backing):
    store.create_run("r1", {"dataset": "spiral"}, LAYERS, 100.0)
    a, b = steps(0, 300), steps(300, 200)
    store.append_steps("r1", a)
    store.append_steps("r1", b)
    store.flush()
    got = store.read_steps("r1")
    assert_steps_equal(got, concat(a, b))
    assert np.isnan(got["loss"][0]) and got["loss"][1] == np.inf and got["loss"][2] == -np.inf
    assert got["grad_norm"].shape == (500, 3) and got["step"].dtype == np.int64
    assert store.get_run("r1")["step"] == 499  # flushing records the newest step
    with closing(backing.open()) as reopened:  # it is on disk
        assert_steps_equal(reopened.read_steps("r1"), concat(a, b))


def test_appended_arrays_are_copied(store):
    store.create_run("r", {}, LAYERS, 1.0)
    block = steps(0, 10)
    want = {k: v.copy() for k, v in block.items()}
    store.append_steps("r", block)
    for col in block.values():
        col[...] = 0  # the training loop reuses its buffers
    assert_steps_equal(store.read_steps("r"), want)


def test_buffered_steps_are_readable_before_flush_and_written_by_it(store, backing):
    store.create_run("r", {}, LAYERS, 1.0)
    store.append_steps("r", steps(0, 40))
    store.flush()
    store.append_steps("r", steps(40, 25))
    assert_steps_equal(store.read_steps("r"), concat(steps(0, 40), steps(40, 25)))
    other = backing.open()  # a second reader sees only what was flushed
    assert len(other.read_steps("r")["step"]) == 40
    store.flush()
    assert len(other.read_steps("r")["step"]) == 65
    store.flush()  # nothing buffered: nothing written twice
    assert len(other.read_steps("r")["step"]) == 65
    other.close()


def test_steps_appended_while_a_flush_writes_stay_buffered(store, backing, monkeypatch):
    store.create_run("r", {}, LAYERS, 1.0)
    store.append_steps("r", steps(0, 10))
    encode = codec.encode_steps

    def encode_while_training_appends(block):
        monkeypatch.setattr(codec, "encode_steps", encode)
        store.append_steps("r", steps(10, 5))  # a training thread, mid-flush
        return encode(block)

    monkeypatch.setattr(codec, "encode_steps", encode_while_training_appends)
    store.flush()
    assert store.read_steps("r")["step"].tolist() == list(range(15))
    with closing(backing.open()) as other:
        assert other.read_steps("r")["step"].tolist() == list(range(10))
        store.flush()
        assert other.read_steps("r")["step"].tolist() == list(range(15))


def test_every_nth_row_and_step_ranges_across_chunks(store, monkeypatch):
    monkeypatch.setattr(store_module, "CHUNK_ROWS", 16)  # many chunk rows, some skipped by range
    store.create_run("r", {}, LAYERS, 1.0)
    for start in range(0, 100, 7):
        store.append_steps("r", steps(start, min(7, 100 - start)))
        if start < 60:
            store.flush()  # rows 0..62 on disk, the rest buffered
    assert store.read_steps("r")["step"].tolist() == list(range(100))
    assert store.read_steps("r", every=10)["step"].tolist() == list(range(0, 100, 10))
    assert store.read_steps("r", start=25, stop=70)["step"].tolist() == list(range(25, 70))
    part = store.read_steps("r", start=25, stop=70, every=10)
    assert part["step"].tolist() == [25, 35, 45, 55, 65]
    np.testing.assert_array_equal(part["t"], steps(0, 100)["t"][25:70:10])
    assert part["grad_norm"].shape == (5, 3)
    assert store.read_steps("r", start=90)["step"].tolist() == list(range(90, 100))
    assert store.read_steps("r", start=200)["step"].tolist() == []


def test_a_run_without_steps_reads_as_empty_columns(store):
    store.create_run("r", {}, LAYERS, 1.0)
    got = store.read_steps("r")
    assert set(got) == set(SCHEMA)
    assert got["loss"].shape == (0,) and got["grad_norm"].shape == (0, 3)
    assert got["step"].dtype == np.int64 and got["t"].dtype == np.float64
    assert store.read_steps("nope")["step"].shape == (0,)


def test_events_keep_order_filter_by_type_and_null_non_finite(store, backing):
    store.create_run("r", {}, LAYERS, 1.0)
    store.append_event("r", {"type": "eval", "step": 10, "test_loss": 0.5})
    store.append_event("r", {"type": "chime", "step": 20, "reason": "converged"})
    store.flush()
    store.append_event("r", {"type": "eval", "step": 30, "test_loss": float("nan")})
    store.append_event("r", {"type": "end", "step": 31, "state": "finished"})
    want = [
        {"type": "eval", "step": 10, "test_loss": 0.5},
        {"type": "chime", "step": 20, "reason": "converged"},
        {"type": "eval", "step": 30, "test_loss": None},
        {"type": "end", "step": 31, "state": "finished"},
    ]
    assert store.read_events("r") == want  # two flushed, two still buffered
    assert store.read_events("r", types={"eval"}) == [want[0], want[2]]
    assert store.read_events("r", types={"chime", "end"}) == [want[1], want[3]]
    store.flush()
    with closing(backing.open()) as reopened:
        assert reopened.read_events("r") == want
    assert store.read_events("other") == []


def test_list_runs_newest_first_with_all_fields(store):
    store.create_run("old", {"seed": 1}, LAYERS, 100.0)
    store.create_run("new", {"seed": 2}, [2, 1], 300.0)
    store.create_run("mid", {"seed": 3}, LAYERS, 200.0)
    runs = store.list_runs()
    assert [r["id"] for r in runs] == ["new", "mid", "old"]
    assert runs[0] == {
        "id": "new",
        "state": "starting",
        "step": 0,
        "created": 300.0,
        "updated": 300.0,
        "config": {"seed": 2},
        "layers": [2, 1],
        "summary": None,
    }
    assert store.get_run("mid")["config"] == {"seed": 3}
    assert store.get_run("missing") is None


def test_set_state_updates_step_summary_and_timestamp(store):
    config = {"learning_rate": np.float64(0.03), "bad": float("inf"), "hidden": np.array([8, 8])}
    store.create_run("r", config, LAYERS, 100.0)
    assert store.get_run("r")["config"] == {"learning_rate": 0.03, "bad": None, "hidden": [8, 8]}
    before = time.time()
    store.set_state("r", "running", step=5)
    run = store.get_run("r")
    assert (run["state"], run["step"], run["summary"]) == ("running", 5, None)
    assert run["updated"] >= before and run["created"] == 100.0
    store.set_state("r", "finished", step=9, summary={"final_loss": float("nan"), "steps": 9})
    store.set_state("r", "finished")  # no step or summary given: both are kept
    run = store.get_run("r")
    assert (run["state"], run["step"]) == ("finished", 9)
    assert run["summary"] == {"final_loss": None, "steps": 9}
    with pytest.raises(KeyError):
        store.set_state("missing", "running")


def test_delete_run_removes_run_steps_events_and_buffers(store):
    for run_id in ("a", "b"):
        store.create_run(run_id, {}, LAYERS, 1.0)
        store.append_steps(run_id, steps(0, 50))
        store.append_event(run_id, {"type": "chime", "step": 3})
    store.flush()
    store.append_steps("a", steps(50, 10))  # buffered steps go too
    store.append_event("a", {"type": "end", "step": 59})
    assert store.delete_run("a") is True
    assert store.read_steps("a")["step"].size == 0 and store.read_events("a") == []
    assert store.delete_run("a") is False
    store.append_steps("a", steps(60, 10))  # a late block from the stopping training thread
    store.append_event("a", {"type": "end", "step": 69})
    store.flush()
    assert store.get_run("a") is None
    assert store.read_steps("a")["step"].size == 0 and store.read_events("a") == []
    assert [r["id"] for r in store.list_runs()] == ["b"]
    assert store.read_steps("b")["step"].size == 50 and len(store.read_events("b")) == 1
    chunks = store._query("SELECT COUNT(*) FROM chunks WHERE run_id = 'a'", ())[0][0]
    assert chunks == 0


def test_persists_across_restart_and_close_flushes(backing):
    first = backing.open()
    first.create_run("r", {"dataset": "xor"}, LAYERS, 10.0)
    first.append_steps("r", steps(0, 100))
    first.flush()
    first.append_steps("r", steps(100, 20))
    first.append_event("r", {"type": "end", "step": 119})
    first.set_state("r", "finished", step=119, summary={"final_loss": 0.1})
    first.close()  # flushes what is still buffered
    second = backing.open()
    run = second.get_run("r")
    assert (run["state"], run["step"], run["summary"]) == ("finished", 119, {"final_loss": 0.1})
    assert_steps_equal(second.read_steps("r"), steps(0, 120))
    assert second.read_events("r") == [{"type": "end", "step": 119}]
    assert second.mark_interrupted() == []  # finished runs are left alone
    second.close()


def test_crash_keeps_flushed_steps_and_marks_live_runs_interrupted(backing):
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from app.store import open_store
        from tests.test_store import steps
        store = open_store(Path({str(backing.folder)!r}), {backing.url!r})
        store.create_run("done", {{}}, [2, 8, 8, 1], 1.0)
        store.set_state("done", "finished", step=0)
        store.create_run("live", {{}}, [2, 8, 8, 1], 2.0)
        store.set_state("live", "running")
        store.create_run("paused", {{}}, [2, 8, 8, 1], 3.0)
        store.set_state("paused", "paused")
        store.append_steps("live", steps(0, 1000))
        store.append_event("live", {{"type": "eval", "step": 999}})
        store.flush()
        store.append_steps("live", steps(1000, 500))  # never flushed
        os._exit(1)  # no close, no atexit: a crash
    """)
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=False, timeout=60)
    store = backing.open()
    assert_steps_equal(store.read_steps("live"), steps(0, 1000))
    assert store.read_events("live") == [{"type": "eval", "step": 999}]
    assert sorted(store.mark_interrupted()) == ["live", "paused"]
    states = {r["id"]: (r["state"], r["step"]) for r in store.list_runs()}
    assert states == {
        "done": ("finished", 0),
        "live": ("interrupted", 999),
        "paused": ("interrupted", 0),
    }
    assert store.mark_interrupted() == []
    store.close()


def test_prune_drops_oldest_finished_runs_and_never_live_ones(backing):
    store = backing.open(max_runs=3)
    states = ["finished", "running", "stopped", "diverged", "starting", "interrupted"]
    for i, state in enumerate(states):
        store.create_run(f"r{i}", {}, LAYERS, float(i))
        store.set_state(f"r{i}", state)
        store.append_steps(f"r{i}", steps(0, 2000))
    store.close()  # checkpoints: all data in the database file, no WAL
    store = backing.open(max_runs=3)
    before = store.disk_bytes()
    assert store.prune() == ["r0", "r2", "r3"]  # r1 is older but live
    if backing.url is None:  # PostgreSQL's autovacuum reuses the space, keeping the files
        assert store.disk_bytes() < 0.6 * before  # half the steps went, and so did their space
    assert [r["id"] for r in store.list_runs()] == ["r5", "r4", "r1"]
    assert store.read_steps("r0")["step"].size == 0
    assert store.prune() == []
    store.create_run("r6", {}, LAYERS, 6.0)
    store.create_run("r7", {}, LAYERS, 7.0)
    assert store.prune() == ["r5"]  # only one finished run is left to drop
    assert {r["state"] for r in store.list_runs()} == {"starting", "running"}
    store.close()


def test_steps_are_compact_on_disk(backing):
    store = backing.open()
    store.create_run("r", {}, LAYERS, 1.0)
    n = 60_000
    for start in range(0, n, 500):
        store.append_steps("r", steps(start, 500))
    store.close()  # checkpoints the WAL into the database file
    reopened = backing.open()
    raw = n * (3 * 8 + 13 * 8)  # float64/int64 columns, uncompressed
    assert reopened.disk_bytes() < raw / 2
    assert len(reopened.read_steps("r", every=100)["step"]) == n // 100
    reopened.close()


def test_concurrent_appends_flushes_and_reads_lose_nothing(store):
    runs = [f"r{i}" for i in range(4)]
    for run_id in runs:
        store.create_run(run_id, {}, LAYERS, 1.0)
    done = threading.Event()

    def train(run_id):
        for start in range(0, 3000, 30):
            store.append_steps(run_id, steps(start, 30))

    def flusher():
        while not done.is_set():
            store.flush()
            for run_id in runs:
                store.read_steps(run_id, every=7)

    background = threading.Thread(target=flusher)
    background.start()
    trainers = [threading.Thread(target=train, args=(r,)) for r in runs]
    for t in trainers:
        t.start()
    for t in trainers:
        t.join()
    done.set()
    background.join()
    store.flush()
    for run_id in runs:
        assert store.read_steps(run_id)["step"].tolist() == list(range(3000))


def test_data_folder_that_cannot_be_created_is_a_store_error(tmp_path):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    for data_dir in (a_file, a_file / "data"):
        with pytest.raises(StoreError, match="cannot create data folder .*not-a-folder"):
            RunStore(data_dir)


def test_corrupt_database_is_a_store_error(tmp_path):
    (tmp_path / "backbeat.db").write_bytes(b"this is not sqlite\n" * 512)
    with pytest.raises(StoreError, match="backbeat.db is not a valid database"):
        RunStore(tmp_path)


def test_locked_database_is_a_store_error_after_the_busy_timeout(tmp_path):
    store = RunStore(tmp_path, busy_timeout=0.2)
    store.create_run("r", {}, LAYERS, 1.0)
    other = sqlite3.connect(tmp_path / "backbeat.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    began = time.monotonic()
    with pytest.raises(StoreError, match="backbeat.db is locked by another process"):
        RunStore(tmp_path, busy_timeout=0.2)
    assert time.monotonic() - began < 3
    store.append_steps("r", steps(0, 10))
    with pytest.raises(StoreError, match="locked"):
        store.flush()
    assert time.monotonic() - began < 3
    assert store.read_steps("r")["step"].size == 10  # still buffered, not lost
    other.execute("COMMIT")
    other.close()
    store.flush()
    with closing(RunStore(tmp_path)) as reopened:
        assert reopened.read_steps("r")["step"].size == 10
    store.close()


def test_full_disk_is_a_store_error_and_keeps_the_buffer(tmp_path):
    store = RunStore(tmp_path)
    store.create_run("r", {}, LAYERS, 1.0)
    pages = store._query("PRAGMA page_count", ())[0][0]
    store._db.execute(f"PRAGMA max_page_count = {pages + 1}")  # SQLite's own "disk full"
    store.append_steps("r", steps(0, 20_000))
    with pytest.raises(StoreError, match="backbeat.db cannot grow: the disk is full"):
        store.flush()
    assert store.read_steps("r")["step"].size == 20_000
    store._db.execute("PRAGMA max_page_count = 1000000")
    store.flush()
    with closing(RunStore(tmp_path)) as reopened:
        assert reopened.read_steps("r")["step"].size == 20_000
    store.close()


def test_snapshots_answer_the_newest_at_or_before_a_step_and_drop(store, backing):
    from tests.test_model_snapshots import snapshot

    store.create_run("r", {}, [2, 3, 1], 0.0)
    store.append_snapshot("r", 0, snapshot(0.0))
    store.append_snapshot("r", 50, snapshot(0.5))
    store.flush()
    store.append_snapshot("r", 50, snapshot(0.25))  # the same step again: replaced
    store.append_snapshot("r", 100, snapshot(1.0))
    store.flush()
    got = store.read_snapshot("r", 60)
    assert got["step"] == 50 and got["layers"][0]["weights"] == [[0.25] * 3] * 2
    assert got["layers"][1]["biases"] == [1.0] and got["loss"] == "bce"
    store.drop_snapshots("r", [50])
    store.flush()
    with closing(backing.open()) as reopened:
        assert reopened.read_snapshot("r", 60)["step"] == 0
        assert reopened.read_snapshot("r", 10**12)["step"] == 100
    store.delete_run("r")
    assert store.read_snapshot("r", 200) is None


def table(seed: int) -> Table:
    x = np.random.default_rng(seed).normal(size=(6, 2))
    return Table(["a", "b"], "y", "classification", ["no", "yes"], x, np.arange(6.0) % 2)


def test_uploaded_sets_are_named_case_blind_kept_by_runs_and_collected(store, backing):
    sets = TableStore(store, max_sets=2)
    info, new = sets.save("Blobs", table(1))
    assert new and info["name"] == "Blobs" and info["rows"] == 6
    assert sets.save("blobs", table(1)) == (info, False)  # same name, same rows: kept
    with pytest.raises(DuplicateName, match="'Blobs' already exists"):
        sets.save("BLOBS", table(2))
    assert sets.info("bLoBs") == info and sets.by_name("BLOBS").hash == table(1).hash
    sets.save("other", table(2))
    with pytest.raises(TooManySets):
        sets.save("third", table(3))
    with closing(backing.open()) as again:  # another process sees them
        assert [s["name"] for s in TableStore(again).list()] == ["Blobs", "other"]
    store.create_run("r", {"dataset": f"upload:{table(2).hash}"}, LAYERS, 1.0)
    assert sets.delete("OTHER") and not sets.delete("other")
    assert sets.by_name("other") is None
    assert sets.by_hash(table(2).hash).hash == table(2).hash  # a stored run still uses it
    store.delete_run("r")
    assert sets.collect() == 1 and sets.by_hash(table(2).hash) is None
    assert sets.delete("blobs") and sets.collect() == 0 and sets.list() == []


def test_the_server_writes_history_from_a_thread_that_yields_the_cpu_to_its_loop(
    tmp_path, monkeypatch
):
    """A flush is ~14 ms of CPU a second's steps; viewers' writes must not share it evenly."""
    from app.web import server
    from app.web.server import create_app
    from app.web.settings import Settings
    from tests._server import ThreadedServer

    app = create_app(Settings(data_dir=tmp_path, store_flush_interval=0.02))
    seen, flushed = [], threading.Event()
    with ThreadedServer(app) as srv:
        real = app.state.store.flush

        def flush() -> None:
            me = threading.get_native_id()
            seen.append((me, os.getpriority(os.PRIO_PROCESS, me)))
            flushed.set() if len(seen) >= 3 else None
            real()

        monkeypatch.setattr(app.state.store, "flush", flush)
        assert flushed.wait(10), "the server never flushed its history"
        loop_nice = os.getpriority(os.PRIO_PROCESS, srv.thread.native_id)
        periodic = seen[:3]  # (the shutdown's last flush runs on the loop, as it must)
    threads = {tid for tid, _ in periodic}
    assert len(threads) == 1  # one writer thread, not the shared pool
    assert srv.thread.native_id not in threads
    assert {nice for _, nice in periodic} == {min(19, loop_nice + server.HISTORY_NICE)}
