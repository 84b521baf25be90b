"""The decision grid as it travels: uint8 cells, row-major, zlib-compressed, then base64.

A grid is the class-1 probability (or the regression output mapped from the target range)
quantised to 0…255 over GRID_SIZE² points, row 0 = ymax. A trained model's grid is
mostly 0 and 255 with a band between, so zlib takes its 4,096 bytes (5,464 in base64) to
a few hundred: it was half of what a page received from an unpaced run
(bench/audience_bytes.py, docs/benchmarks.md). Every decoder has zlib (Python's `zlib`,
the browser's `DecompressionStream("deflate")`), and the cells are the same bytes as
before compression, so what the page paints is unchanged.

Grids stored before this encoding carry `data` (the cells in base64, uncompressed);
`current` rewrites them on the way out of the store, so the wire has one encoding.
"""

import base64
import zlib

import numpy as np

GRID_SIZE = 64  # decision-boundary cells per side
LEVEL = 6  # zlib's default: ~65 µs for a grid; 9 saves 5 % more at 6× the time


def grid_message(cells: np.ndarray, extent: tuple[float, float, float, float]) -> dict:
    """An eval's `grid`: `cells` is size × size uint8, row 0 = ymax."""
    xmin, xmax, ymin, ymax = extent
    packed = zlib.compress(np.ascontiguousarray(cells, dtype=np.uint8).tobytes(), LEVEL)
    return {
        "size": cells.shape[0],
        "x": [xmin, xmax],
        "y": [ymin, ymax],
        "zlib": base64.b64encode(packed).decode("ascii"),
    }


def grid_cells(grid: dict) -> np.ndarray:
    """A grid's cells as size × size uint8 (either encoding)."""
    if "zlib" in grid:
        raw = zlib.decompress(base64.b64decode(grid["zlib"]))
    else:
        raw = base64.b64decode(grid["data"])
    size = grid["size"]
    return np.frombuffer(raw, dtype=np.uint8).reshape(size, size)


def current(event: dict) -> dict:
    """A stored event as it is sent now: an eval's uncompressed grid (older stores) zlib'd."""
    grid = event.get("grid") if event.get("type") == "eval" else None
    if not grid or "data" not in grid:
        return event
    extent = (*grid["x"], *grid["y"])
    return {**event, "grid": grid_message(grid_cells(grid), extent)}
