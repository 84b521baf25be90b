"""Backbeat: hear and see a neural network learn."""

import os

# One BLAS thread: the nets are small, and spinning BLAS workers on a shared 2-core
# machine slow evaluation tenfold. Set before numpy loads; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
