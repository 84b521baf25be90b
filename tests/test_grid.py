"""The decision grid on the wire: zlib'd cells, the same bytes as the network's output quantised."""

import base64
import zlib

import numpy as np

from app.engine.config import RunConfig
from app.engine.datasets import featurize, grid_points
from app.engine.grid import GRID_SIZE, current, grid_cells, grid_message
from app.engine.trainer import Trainer
from app.store import RunStore

EXTENT = (-6.0, 6.0, -5.0, 5.0)


def disc(size: int = GRID_SIZE) -> np.ndarray:
    """A trained model's kind of grid: saturated inside and out, a smooth band between."""
    r = np.hypot(*np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j])
    return (255 / (1 + np.exp((r - 0.5) * 40)) + 0.5).astype(np.uint8)


def inflate(grid: dict) -> np.ndarray:
    """What any client does: base64, then zlib (RFC 1950), then size × size bytes."""
    raw = zlib.decompress(base64.b64decode(grid["zlib"]))
    return np.frombuffer(raw, np.uint8).reshape(grid["size"], grid["size"])


def test_a_grid_travels_as_zlib_and_inflates_to_the_same_cells():
    cells = disc()
    grid = grid_message(cells, EXTENT)
    assert set(grid) == {"size", "x", "y", "zlib"}
    assert grid["size"] == GRID_SIZE and grid["x"] == [-6.0, 6.0] and grid["y"] == [-5.0, 5.0]
    np.testing.assert_array_equal(inflate(grid), cells)
    np.testing.assert_array_equal(grid_cells(grid), cells)
    raw_base64 = len(base64.b64encode(cells.tobytes()))
    assert 5 * len(grid["zlib"]) < raw_base64  # 5,464 characters before; here 716


def test_the_trainers_grid_is_its_network_output_quantised():
    trainer = Trainer(RunConfig(dataset="circle", steps_per_second=None))
    for _ in range(300):
        trainer.train_step()
    grid = trainer.evaluate()[0]["grid"]
    points = grid_points(trainer.data.extent, GRID_SIZE)  # row 0 = ymax
    out = trainer.net.predict(featurize(points, trainer.config.features))  # float64, not 32
    want = (np.clip(out[:, 0], 0, 1) * 255 + 0.5).astype(int).reshape(GRID_SIZE, GRID_SIZE)
    got = inflate(grid).astype(int)
    assert np.abs(got - want).max() <= 1 and (got == want).mean() > 0.95
    assert got[GRID_SIZE // 2, GRID_SIZE // 2] > 200 and got[0, 0] < 50  # the disc, not a corner


def test_a_grid_stored_uncompressed_by_an_earlier_version_reads_back_zlibbed(tmp_path):
    cells = disc()
    legacy = {  # how evals were stored before the grid was compressed
        "type": "eval",
        "step": 50,
        "test_loss": 0.25,
        "grid": {"size": GRID_SIZE, "x": [-6.0, 6.0], "y": [-5.0, 5.0],
                 "data": base64.b64encode(cells.tobytes()).decode()},
    }  # fmt: skip
    store = RunStore(tmp_path)
    try:
        store.create_run("r", {}, [2, 1], 1.0)
        store.append_event("r", legacy)
        store.append_event("r", {"type": "eval", "step": 60, "test_loss": 0.2, "grid": None})
        store.flush()
        first, second = store.read_events("r", types={"eval"})
    finally:
        store.close()
    assert first == {**legacy, "grid": grid_message(cells, EXTENT)}
    np.testing.assert_array_equal(inflate(first["grid"]), cells)
    assert second["grid"] is None
    chime = {"type": "chime", "step": 3, "reason": "solved"}
    assert current(chime) is chime
