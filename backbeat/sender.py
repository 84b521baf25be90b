"""The background sender: batches logged steps and sends them over one websocket.

Training only ever appends to a bounded deque. This thread creates the run, connects,
sends batches of up to 1,000 steps, and follows the state the server pushes (the
presenter's pause and stop). A slow or absent server means the oldest pending steps
are dropped, counted, and warned about once; the thread reconnects with a backoff.
Nothing here raises into the training loop.
"""

import json
import logging
import math
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import deque

import orjson
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

log = logging.getLogger("backbeat")

MAX_PENDING = 100_000  # steps kept while the server is slow or away (oldest dropped first)
BATCH_STEPS = 1000  # steps per message (the server's limit)
MAX_EVALS = 100  # evaluations per message (the server's limit)
MAX_EXTRA = 32  # extra scalar names a run may log (the server's limit)
SEND_INTERVAL = (
    0.25  # s between batches (fewer wake-ups of this thread: less GIL taken from training)
)
PING_INTERVAL = 5.0  # s between pings while nothing is logged (the server's idle limit is 30 s)
CONNECT_TIMEOUT = 2.0  # s for the websocket handshake (creating the run may take ACK_TIMEOUT)
ACK_TIMEOUT = 10.0  # s a batch may wait for its acknowledgement
BACKOFF = (0.5, 1.0, 2.0, 5.0)  # s between reconnection attempts
ENDED = frozenset({"finished", "stopped", "diverged", "failed", "interrupted"})


class Unreachable(OSError):
    """The server did not answer or refused us."""


def _num(x) -> float | None:
    """JSON has no NaN: a non-finite value travels as null (the server reads it as NaN).

    A value still on a GPU (a 0-d tensor) is read here, in this thread: training does not
    wait for it. One that cannot be read travels as null.
    """
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError, RuntimeError):
        return None
    return x if math.isfinite(x) else None


def _scalar_default(x) -> float | None:
    """orjson's hook for what it cannot write itself (a tensor still on its device, a numpy
    number): read here, in this thread, through `_num`. Floats (NaN and Infinity as null)
    and None it writes as they are, with no Python call per value."""
    return _num(x)


def _row(values, width: int) -> list | None:
    """A per-layer row: a measurement (read now) or a list; None when not measured."""
    if values is None:
        return None
    resolve = getattr(values, "resolve", None)
    try:
        values = resolve() if resolve is not None else list(values)
    except (TypeError, ValueError, RuntimeError):
        return None
    return [_num(v) for v in values] if len(values) == width else None


def encode(batch: dict) -> str:
    """A batch as JSON text: one C call; only non-float values come back to Python."""
    return orjson.dumps(batch, default=_scalar_default).decode()


def post_json(url: str, body: dict, token: str | None, timeout: float) -> dict:
    headers = {"content-type": "application/json"}
    if token:
        headers["x-backbeat-token"] = token
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise Unreachable(f"{url} answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise Unreachable(f"{url}: {exc}") from exc


class Sender(threading.Thread):
    """Owns the connection; `put` and `put_eval` are all the training thread calls."""

    def __init__(self, server: str, token: str | None, spec, max_pending: int = MAX_PENDING):
        super().__init__(name="backbeat-sender", daemon=True)
        self.server, self.token, self.spec = server.rstrip("/"), token, spec
        self.pending: deque = deque()
        self.inflight: list = []  # taken off `pending`, not yet acknowledged
        self.inflight_evals: list = []
        self.lock = threading.Lock()
        self.evals: deque = deque(maxlen=1000)
        self.extras: deque = deque()  # (step, {name: value}) of extra scalars
        self.extra_names: set[str] = set()
        self.layer_columns: set[str] = set()  # per-layer columns sent: later batches carry them
        self.inflight_extras: list = []
        self.max_pending = max_pending
        self.dropped = 0
        self.dropped_extras = 0
        self.sent = 0
        self.state = "starting"
        self.run_id: str | None = None
        self.key = secrets.token_urlsafe(16)  # this run's client_key
        self.width = 0
        self.error: str | None = None
        self.connected = threading.Event()
        self.unpaused = threading.Event()
        self.unpaused.set()
        self.closing = threading.Event()
        self.end_state = "finished"
        self.done = threading.Event()

    # -- the training thread ------------------------------------------------------------
    def put(self, row: tuple) -> None:
        """No lock: a deque's append and popleft are atomic, and this must cost next to nothing."""
        pending = self.pending
        pending.append(row)
        if len(pending) > self.max_pending:
            self.overflow()

    def overflow(self) -> None:
        """More than `max_pending` steps wait: the oldest goes, counted (warned about once)."""
        self.pending.popleft()
        self.dropped += 1
        if self.dropped == 1:
            log.warning(
                "backbeat: the server is not keeping up; dropping the oldest steps "
                "(kept: %d; the count is reported at finish)",
                self.max_pending,
            )

    def put_eval(self, ev: dict) -> None:
        self.evals.append(ev)

    def put_extra(self, step: int, values: dict) -> None:
        self.extra_names.update(values)
        with self.lock:
            if self.extras and self.extras[-1][0] == step:  # more of the same step: one entry
                self.extras[-1][1].update(values)
                return
            self.extras.append((step, values))
            if len(self.extras) + len(self.inflight_extras) > self.max_pending:
                self.extras.popleft()
                self.dropped_extras += 1

    # -- this thread --------------------------------------------------------------------
    def run(self) -> None:
        attempt = 0
        try:
            while True:
                try:
                    self._session()
                    return
                except (OSError, WebSocketException, TimeoutError, ValueError) as exc:
                    self._requeue()
                    self.connected.clear()
                    self.unpaused.set()  # a pausable log() never waits on a server that is gone
                    if self.error != str(exc):
                        log.warning("backbeat: %s (retrying in the background)", exc)
                    self.error = str(exc)
                if self.closing.is_set() and attempt >= 1:
                    return
                time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                attempt += 1
        except Exception:  # never let a bug here reach training; say so once
            log.exception("backbeat: the sender stopped")
        finally:
            self.done.set()

    def _create(self) -> None:
        spec = {**self.spec(), "client_key": self.key}  # a retry after a lost answer: same run
        answer = post_json(f"{self.server}/api/runs/external", spec, self.token, ACK_TIMEOUT)
        self.run_id, self.width = answer["id"], len(spec["layers"])
        print(f"backbeat: run {self.run_id} at {self.server}/", flush=True)

    def _session(self) -> None:
        if self.run_id is None:
            self._create()
        url = self.server.replace("http", "ws", 1) + f"/ws/ingest/{self.run_id}"
        headers = {"x-backbeat-token": self.token} if self.token else None
        with connect(
            url, open_timeout=CONNECT_TIMEOUT, additional_headers=headers, max_size=2**20
        ) as ws:
            self.connected.set()
            self.error = None
            last_sent = time.monotonic()
            while True:
                full = len(self.pending) >= BATCH_STEPS or len(self.extras) >= BATCH_STEPS
                self._read(ws, 0 if full else SEND_INTERVAL)
                if self.state in ENDED:
                    return
                closing = self.closing.is_set()
                batch = self._batch(closing)
                if batch is None and time.monotonic() - last_sent > PING_INTERVAL:
                    ws.send(json.dumps({"type": "ping"}))
                    last_sent = time.monotonic()
                if batch is None:
                    continue
                ws.send(encode(batch))
                self._await_ack(ws)
                self.sent += len(self.inflight)
                self.inflight, self.inflight_evals = [], []  # forgotten once the server has them
                self.inflight_extras = []
                last_sent = time.monotonic()
                if batch.get("end"):
                    return

    def _requeue(self) -> None:
        """A batch that got no answer goes back to the front, to be sent again."""
        with self.lock:
            self.pending.extendleft(reversed(self.inflight))
            self.evals.extendleft(reversed(self.inflight_evals))
            self.extras.extendleft(reversed(self.inflight_extras))
            self.inflight, self.inflight_evals, self.inflight_extras = [], [], []
            while len(self.pending) > self.max_pending:  # what came meanwhile is newer
                self.pending.popleft()
                self.dropped += 1

    def _batch(self, closing: bool) -> dict | None:
        with self.lock:
            n = min(BATCH_STEPS, len(self.pending))
            rows = self.inflight = [self.pending.popleft() for _ in range(n)]
            n = min(BATCH_STEPS, len(self.extras))
            extras = self.inflight_extras = [self.extras.popleft() for _ in range(n)]
            last = closing and not self.pending and not self.extras
        evals = self.inflight_evals = []
        while self.evals and len(evals) < MAX_EVALS:
            evals.append(self.evals.popleft())
        if not rows and not evals and not extras and not last:
            return None
        cols = list(zip(*rows, strict=True)) if rows else [()] * 9
        batch = {  # scalar columns as tuples: `encode` reads whatever is not a float
            "type": "steps",
            "step": cols[0],
            "t": cols[1],
            "epoch": cols[2],
            "loss": cols[3],
            "evals": evals,
        }
        for k, name in ((4, "accuracy"), (5, "entropy")):  # optional: not sent when all null
            if cols[k].count(None) != len(cols[k]):
                batch[name] = cols[k]
        width = self.width
        for k, name in ((6, "grad_norm"), (7, "update_ratio"), (8, "act_rms")):
            # a batch of unmeasured steps still sends null rows: the server then holds the last
            # measured row (a missing column would mean "not logged", stored as NaN)
            col = cols[k]
            sent = name in self.layer_columns
            if width and rows and (sent or col.count(None) != len(col)):
                batch[name] = [None if v is None else _row(v, width) for v in col]
                self.layer_columns.add(name)
        if extras:
            names = sorted({name for _, values in extras for name in values})
            batch["extra"] = {
                "step": [step for step, _ in extras],
                "values": {n: [_num(values.get(n)) for _, values in extras] for n in names},
            }
        if last:
            batch["end"] = self.end_state
        return batch

    def _await_ack(self, ws) -> None:
        deadline = time.monotonic() + ACK_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the server did not acknowledge a batch")
            kind = self._read(ws, remaining, until_ack=True)
            if kind in ("ack", "error"):
                return

    def _read(self, ws, timeout: float, until_ack: bool = False) -> str | None:
        """Take what the server says (state changes, acks) within `timeout` seconds."""
        try:
            text = ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        message = json.loads(text)
        kind = message.get("type")
        if "state" in message:
            self._follow(message["state"])
        if kind == "error":
            log.warning("backbeat: the server refused a batch: %s", message.get("detail"))
        if not until_ack:
            while True:  # drain whatever else is waiting, without blocking
                try:
                    more = json.loads(ws.recv(timeout=0))
                except TimeoutError:
                    break
                if "state" in more:
                    self._follow(more["state"])
        return kind

    def _follow(self, state: str) -> None:
        self.state = state
        if state == "paused":
            self.unpaused.clear()
        else:
            self.unpaused.set()
