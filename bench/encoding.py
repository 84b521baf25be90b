"""Does a binary float32 audience frame pay on top of the JSON summary? Sizes and send cost.

    .venv/bin/python bench/encoding.py

Trains a real Playground run (spiral, 2 → [8, 8] → 1) for 475 steps, what one 60 Hz
frame of an unpaced run carries, and encodes that block three ways: today's full JSON
frame, the JSON audience summary, and the same summary as packed float32 columns (a
binary websocket message would carry this plus a small header). Then it times what one
more viewer costs the server for each size: a `send` of that many bytes on a loopback TCP
socket with a reader draining the other end (the kernel copy the event loop pays per
viewer per frame), median of rounds.
"""

import socket
import statistics
import threading
import time

import numpy as np

from app.engine.config import RunConfig
from app.engine.trainer import Trainer
from app.live.audience import STATS, SUMMARY_COLUMNS, Frame, summarise
from app.live.wire import dumps

STEPS = 475  # a frame of an unpaced run (issue 14's measurement)
SENDS = 20_000  # per round
ROUNDS = 5


def real_block() -> dict:
    trainer = Trainer(RunConfig(dataset="spiral", seed=1), buffer_capacity=STEPS)
    for _ in range(STEPS):
        trainer.train_step()
    return trainer.buffer.take()


def binary_summary(block: dict) -> bytes:
    """count, first, last as int64; then every stat's columns as float32, in a fixed order."""
    s = summarise(block)
    head = np.array([len(block["step"]), block["step"][0], block["step"][-1]], dtype=np.int64)
    body = [
        np.atleast_1d(np.asarray(s[stat][name], dtype=np.float32))
        for stat in STATS
        for name in SUMMARY_COLUMNS
    ]
    return head.tobytes() + np.concatenate(body).tobytes()


def send_cost(size: int) -> float:
    """µs per `send` of `size` bytes on loopback, with the other end read as fast as it comes."""
    server, client = socket.create_server(("127.0.0.1", 0)), socket.socket()
    client.connect(server.getsockname())
    conn, _ = server.accept()
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            if not client.recv(1 << 20):
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    payload = b"x" * size
    rounds = []
    for _ in range(ROUNDS):
        began = time.process_time()
        for _ in range(SENDS):
            conn.sendall(payload)
        rounds.append((time.process_time() - began) / SENDS * 1e6)
    stop.set()
    conn.close(), client.close(), server.close()
    return statistics.median(rounds)


def main() -> None:
    block = real_block()
    frame = Frame(block)
    sizes = {
        "full JSON (today)": len(dumps(frame.message("full"))),
        "audience JSON summary": len(dumps(frame.message("audience"))),
        "audience float32 binary": len(binary_summary(block)),
    }
    print(f"one frame of {STEPS} steps, 3 weight layers")
    print(f"{'encoding':<26}{'bytes':>8}{'KiB/s at 60 Hz':>16}{'send µs (CPU)':>16}")
    for name, size in sizes.items():
        print(f"{name:<26}{size:>8}{size * 60 / 1024:>16.1f}{send_cost(size):>16.2f}")
    json_size, binary_size = sizes["audience JSON summary"], sizes["audience float32 binary"]
    print(f"full / audience JSON: {sizes['full JSON (today)'] / json_size:.0f}x")
    print(f"audience JSON / binary: {json_size / binary_size:.1f}x")


if __name__ == "__main__":
    main()
