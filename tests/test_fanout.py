"""Fan-out written straight to the sockets: one framed tick for all, stalled viewers cut off."""

import asyncio
import itertools
import json
import socket
import struct
import threading
import time

import httpx
from _server import ThreadedServer, raw_handshake
from websockets.sync.client import connect

from app.live import channel as hub
from app.live import direct as direct_module
from app.live.channel import EVICTED, Channel, Tick, Viewer
from app.live.handle import batched
from app.live.wire import ws_text_frame
from app.web.server import create_app
from app.web.settings import Settings

RUN = dict(
    dataset="circle",
    n_samples=100,
    hidden=[4],
    max_steps=10_000_000,
    steps_per_second=3000,
    stop_at_convergence=False,
)


def read_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of every complete unmasked websocket frame in `data`."""
    frames, at = [], 0
    while at + 2 <= len(data):
        b0, n = data[at], data[at + 1] & 0x7F
        head = {126: 4, 127: 10}.get(n, 2)
        if at + head > len(data):
            break
        if n == 126:
            (n,) = struct.unpack_from("!H", data, at + 2)
        elif n == 127:
            (n,) = struct.unpack_from("!Q", data, at + 2)
        if at + head + n > len(data):
            break
        frames.append((b0 & 0x0F, data[at + head : at + head + n]))
        at += head + n
    return frames


def test_a_text_frame_has_the_length_form_its_size_needs():
    for size, head in ((0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)):
        text = "x" * size
        framed = ws_text_frame(text)
        assert len(framed) == head + size and framed[0] == 0x81  # FIN, text, no mask
        assert read_frames(framed) == [(1, text.encode())]


class FakeSocket:
    """A DirectSocket stand-in: what was written, a settable backlog, the close it got."""

    def __init__(self) -> None:
        self.written, self.buffered, self.closed_with = b"", 0, None

    closed = property(lambda self: self.closed_with is not None)

    def backlog(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


def test_an_attached_viewer_gets_what_was_queued_first_then_each_tick_in_one_write():
    async def scenario():
        channel = Channel("r", 1, asyncio.get_running_loop(), dict)
        with channel.subscribe() as (viewer, _):
            channel._fan_out([{"type": "a"}])  # before the hello went out: queued
            sock = FakeSocket()
            viewer.attach(sock)
            assert viewer.queue.empty()
            channel._fan_out([{"type": "b"}, {"type": "c"}])
            return [json.loads(p) for _, p in read_frames(sock.written)]

    got = asyncio.run(scenario())
    assert got == [{"type": "a", "seq": 1}, {"type": "b", "seq": 2}, {"type": "c", "seq": 3}]


def test_a_direct_viewer_behind_for_too_long_is_evicted_with_4008_and_the_others_kept():
    async def scenario():
        channel = Channel("r", 1, asyncio.get_running_loop(), dict)
        with channel.subscribe() as (slow, _), channel.subscribe() as (fast, _):
            slow_sock, fast_sock = FakeSocket(), FakeSocket()
            slow.attach(slow_sock)
            fast.attach(fast_sock)
            slow_sock.buffered = 1  # the kernel took nothing of its last write
            channel._fan_out([{"type": "frame"}])  # the backlog starts here
            assert not slow.evicted
            slow.behind_since -= hub.VIEWER_PATIENCE + 1  # ...and has not emptied since
            channel._fan_out([{"type": "frame"}])
            assert slow.evicted and slow.dropped.is_set() and channel.evictions == 1
            assert slow_sock.closed_with == (EVICTED, "viewer too slow: evicted")
            assert channel.viewers == {fast} and not fast.evicted
            assert await slow.take() is None  # the session's cue, as on the queued path
            return [json.loads(p)["seq"] for _, p in read_frames(fast_sock.written)]

    assert asyncio.run(scenario()) == [1, 2]


def test_viewers_behind_share_the_ticks_they_missed_and_get_them_in_one_write_on_catching_up():
    async def scenario():
        channel = Channel("r", 1, asyncio.get_running_loop(), dict)
        with channel.subscribe() as (a, _), channel.subscribe() as (b, _):
            socks = {a: FakeSocket(), b: FakeSocket()}
            for viewer, sock in socks.items():
                viewer.attach(sock)
                sock.buffered = 1  # the kernel took nothing of the last write
            for i in range(3):
                channel._fan_out([{"type": "frame", "i": i}])
            assert all(sock.written == b"" for sock in socks.values())  # nothing copied
            assert [id(t) for t in a.behind] == [id(t) for t in b.behind]  # one copy for both
            assert a.behind_bytes == sum(len(t.framed) for t in a.behind) > 0
            socks[a].buffered = 0  # a caught up; b did not
            channel._fan_out([{"type": "frame", "i": 3}])
            assert not a.behind and a.behind_bytes == 0 and a.behind_since is None
            assert len(b.behind) == 4 and not b.evicted
            return [json.loads(p) for _, p in read_frames(socks[a].written)]

    got = asyncio.run(scenario())
    assert [(m["i"], m["seq"]) for m in got] == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_a_viewer_too_far_behind_is_evicted_and_lets_go_of_the_ticks_it_held():
    viewer, sock = Viewer(), FakeSocket()
    viewer.attach(sock)
    sock.buffered = 1
    tick = Tick(["x" * 1000])
    n = hub.VIEWER_BACKLOG // len(tick.framed)
    assert all(viewer.offer_tick(tick, time.monotonic()) for _ in range(n))
    assert not viewer.offer_tick(tick, time.monotonic())
    assert viewer.evicted and sock.closed_with[0] == EVICTED and sock.written == b""
    assert viewer.behind == [] and viewer.behind_bytes == 0


def test_a_direct_viewer_whose_backlog_overflows_is_evicted_at_once():
    viewer, sock = Viewer(), FakeSocket()
    viewer.attach(sock)
    sock.buffered = hub.VIEWER_BACKLOG + 1
    assert not viewer.offer_tick(Tick(['{"type":"frame"}']), time.monotonic())
    assert viewer.evicted and sock.closed_with[0] == EVICTED and sock.written == b""


def read_until_close(sock, deadline: float) -> tuple[int, str]:
    """Read a stalled client's socket from the start until the server's close frame."""
    data = b""
    sock.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            continue
        data += chunk
        body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
        closes = [p for op, p in read_frames(body) if op == 8]
        if closes:
            return struct.unpack("!H", closes[0][:2])[0], closes[0][2:].decode()
        assert chunk, "the connection ended without a close frame"
    raise AssertionError("no close frame before the deadline")


def test_stalled_sockets_get_4008_while_the_others_keep_every_frame(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "VIEWER_PATIENCE", 2.0)  # evict 2 s after the backlog starts
    monkeypatch.setattr(direct_module, "EVICTED_GRACE", 60.0)  # time to read the close frame
    app = create_app(Settings(data_dir=tmp_path, heartbeat_interval=1.0, heartbeat_timeout=60))
    with ThreadedServer(app) as srv:
        run_id = httpx.post(f"{srv.url}/api/runs", json=RUN).json()["id"]
        channel = app.state.manager.get(run_id).channel
        seqs: dict[str, list[int]] = {"audience": [], "full": []}
        stop = threading.Event()

        def watch(detail: str) -> None:  # a strict client: it checks every frame it parses
            with connect(f"{srv.ws_url}/ws/runs/{run_id}?detail={detail}", max_size=None) as ws:
                assert json.loads(ws.recv(10))["type"] == "hello"
                while not stop.is_set():
                    message = json.loads(ws.recv(10))
                    if message["type"] != "ping":
                        seqs[detail].append(message["seq"])

        watchers = [threading.Thread(target=watch, args=(d,), daemon=True) for d in seqs]
        for w in watchers:
            w.start()
        stalled = [raw_handshake(srv.port, f"/ws/runs/{run_id}", rcvbuf=4096) for _ in range(3)]
        try:
            deadline = time.monotonic() + 30
            while channel.evictions < 3:
                assert time.monotonic() < deadline, f"{channel.evictions} of 3 evicted"
                time.sleep(0.05)
            codes = [read_until_close(s, time.monotonic() + 30) for s in stalled]
            assert codes == [(EVICTED, "viewer too slow: evicted")] * 3
            assert len(channel.viewers) == 2 and all(v.direct for v in channel.viewers)
            after = {d: len(s) for d, s in seqs.items()}
            deadline = time.monotonic() + 30
            while any(len(seqs[d]) < after[d] + 10 for d in seqs):  # and they stream on
                assert time.monotonic() < deadline, (after, {d: len(s) for d, s in seqs.items()})
                time.sleep(0.05)
            wait = time.monotonic() + 10
            while app.state.limits.open != {"127.0.0.1": 2}:  # the stalled slots are released
                assert time.monotonic() < wait, app.state.limits.open
                time.sleep(0.05)
        finally:
            stop.set()
            for w in watchers:
                w.join(15)
            for s in stalled:
                s.close()
        assert channel.evictions == 3
        for got in seqs.values():  # nothing lost or reordered for the viewers that read
            assert got == list(range(got[0], got[0] + len(got)))


class FakeClock:
    """`time` for the channel: it moves only when told, and each direct write costs `per_write`."""

    def __init__(self) -> None:
        self.now, self.per_write = 1000.0, 0.0

    def monotonic(self) -> float:
        return self.now

    perf_counter = monotonic

    def time(self) -> float:
        return self.now


class CostlySocket(FakeSocket):
    """A FakeSocket whose every write takes the fake clock's `per_write` (the kernel's send)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock, self.writes = clock, 0

    def write(self, data: bytes) -> None:
        super().write(data)
        self.writes += 1
        self.clock.now += self.clock.per_write


def test_the_audience_is_written_less_often_when_it_costs_more_and_full_viewers_get_every_tick(
    monkeypatch,
):
    clock = FakeClock()
    monkeypatch.setattr(hub, "time", clock)
    audience_size, ticks = 50, 120
    # (one write's cost as a share of a tick, what it costs the whole audience) → ticks per write
    cases = [
        (0.0, 1),  # a cheap audience: every tick, as a full viewer
        (2 * hub.AUDIENCE_SHARE, 2),  # twice the budget: every other tick
        (10 * hub.AUDIENCE_SHARE, round(hub.AUDIENCE_LONGEST / hub.FRAME_INTERVAL)),  # the cap
    ]

    async def scenario(round_cost: float) -> tuple[list[CostlySocket], CostlySocket, int]:
        channel = Channel("r", 1, asyncio.get_running_loop(), dict)
        subscriptions = [channel.subscribe() for _ in range(audience_size)]
        subscriptions.append(channel.subscribe("full"))
        viewers = [s.__enter__()[0] for s in subscriptions]
        sockets = [CostlySocket(clock) for _ in viewers]
        for viewer, sock in zip(viewers, sockets, strict=True):
            viewer.attach(sock)
        clock.per_write = round_cost * hub.FRAME_INTERVAL / audience_size
        for tick in range(ticks):  # the pump's ticks, one frame interval apart
            if tick == ticks // 2:  # the running average of the cost has settled by now
                settled = sockets[0].writes
            began = clock.now
            channel._fan_out([{"type": "frame"}, {"type": "eval"}])
            clock.now = began + hub.FRAME_INTERVAL
        channel._fan_out([{"type": "end"}], flush=True)  # as the run's end does
        return sockets[:-1], sockets[-1], sockets[0].writes - settled

    seqs = list(range(1, 2 * ticks + 2))
    for round_cost, every in cases:
        audience, full, late_writes = asyncio.run(scenario(round_cost))
        assert full.writes == ticks + 1  # every tick, in its own write
        assert [json.loads(p)["seq"] for _, p in read_frames(full.written)] == seqs
        for sock in audience:  # every message, in order, in fewer writes
            assert [json.loads(p)["seq"] for _, p in read_frames(sock.written)] == seqs
        assert len({sock.writes for sock in audience}) == 1  # one write for all at a time
        # over the second half: one write every `every` ticks, and the end's
        assert abs(late_writes - (ticks // 2 / every + 1)) <= 1, (round_cost, late_writes)


def test_a_spaced_audience_write_carries_everything_handed_over_until_it(monkeypatch):
    """While the audience is written less often, the pump ticks when its write is due.

    So a write drains the run first: what was handed over since the last tick does not
    wait for the write after (a step's wait is one audience interval, not that and a tick).
    """
    monkeypatch.setattr(hub, "COST_SMOOTHING", 0.0)  # the cost stays where the test sets it

    async def scenario() -> tuple[list[int], list[float], FakeSocket, int]:
        channel = Channel("r", 1, asyncio.get_running_loop(), dict)
        channel.audience_cost = hub.AUDIENCE_SHARE * hub.AUDIENCE_LONGEST  # the longest wait
        inbox_at_write, written_at = [], []
        write_audience = channel._write_audience

        def recorded(now: float) -> None:
            inbox_at_write.append(len(channel.inbox))
            written_at.append(now)
            write_audience(now)

        monkeypatch.setattr(channel, "_write_audience", recorded)
        sock = FakeSocket()
        with channel.subscribe() as (viewer, _):
            viewer.attach(sock)
            pump = asyncio.create_task(channel.pump())
            sent, until = 0, time.monotonic() + 0.6
            while time.monotonic() < until:  # a producer handing over every 2 ms
                channel.on_event("r", {"type": "note", "n": sent})
                sent += 1
                await asyncio.sleep(0.002)
            channel.on_event("r", {"type": "end"})
            await asyncio.wait_for(pump, 5)
        return inbox_at_write, written_at, sock, sent

    inbox_at_write, written_at, sock, sent = asyncio.run(scenario())
    assert inbox_at_write and set(inbox_at_write) == {0}, inbox_at_write  # drained first
    gaps = [b - a for a, b in itertools.pairwise(written_at[:-1])]  # the end goes at once
    assert min(gaps) >= hub.AUDIENCE_LONGEST - hub.FRAME_INTERVAL / 2  # still spaced
    got = [json.loads(p) for _, p in read_frames(sock.written)]
    assert [m["n"] for m in got if m["type"] == "note"] == list(range(sent))  # all, in order
    assert [m["seq"] for m in got] == list(range(1, sent + 2))


def test_held_audience_writes_over_real_sockets_lose_and_reorder_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "AUDIENCE_SHARE", 1e-9)  # every audience write is over budget
    app = create_app(Settings(data_dir=tmp_path))
    with ThreadedServer(app) as srv:
        run_id = httpx.post(f"{srv.url}/api/runs", json=RUN).json()["id"]
        channel = app.state.manager.get(run_id).channel
        got: dict[str, dict[int, dict]] = {"audience": {}, "full": {}}

        def watch(detail: str) -> None:
            url = f"{srv.ws_url}/ws/runs/{run_id}?detail={detail}"
            with connect(url, max_size=None) as ws:
                assert json.loads(ws.recv(10))["type"] == "hello"
                while len(got[detail]) < 150:
                    message = json.loads(ws.recv(10))
                    if message["type"] != "ping":
                        got[detail][message["seq"]] = message

        watchers = [threading.Thread(target=watch, args=(d,)) for d in got]
        for w in watchers:
            w.start()
        for w in watchers:
            w.join(60)
        assert channel.audience_interval == hub.AUDIENCE_LONGEST  # the budget held it
    audience, full = got["audience"], got["full"]
    seqs = sorted(audience)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # none lost, none repeated
    both = set(audience) & set(full)
    assert len(both) > 50
    for seq in both:  # the same message for either detail, frames aside
        if audience[seq]["type"] != "frame":
            assert audience[seq] == full[seq], seq


def test_viewers_sockets_have_nagle_off_so_a_frame_never_waits_for_an_ack(tmp_path):
    """The listener is made as TCP, so asyncio sets TCP_NODELAY on every connection.

    With Nagle on, a tick written while the previous one was unacknowledged waited for the
    viewer's delayed ACK: about one frame in ten arrived ~25 ms late (docs/benchmarks.md,
    "Fan-out, session 6")."""
    app = create_app(Settings(data_dir=tmp_path))
    with ThreadedServer(app) as srv:
        run_id = httpx.post(f"{srv.url}/api/runs", json={**RUN, "start_paused": True}).json()["id"]
        channel = app.state.manager.get(run_id).channel
        with connect(f"{srv.ws_url}/ws/runs/{run_id}") as ws:
            assert json.loads(ws.recv(10))["type"] == "hello"
            deadline = time.monotonic() + 10
            while not any(v.direct for v in list(channel.viewers)):
                assert time.monotonic() < deadline, "the viewer was never written directly"
                time.sleep(0.02)

            def nodelay() -> list[int]:
                return [
                    v.direct.transport.get_extra_info("socket").getsockopt(
                        socket.IPPROTO_TCP, socket.TCP_NODELAY
                    )
                    for v in channel.viewers
                ]

            assert srv.call(nodelay) == [1]


def test_a_batch_handed_over_wakes_the_pump_once_after_its_last_item():
    """Else the first item's wake-up lets the loop drain half a batch (the GIL goes with the
    self-pipe's write), and the rest's wake-up moves the pump's next tick off the beat."""

    async def scenario() -> tuple[list[bool], bool, int]:
        channel = Channel("r", 1, asyncio.get_running_loop(), dict)
        inside = []
        with batched(channel):
            for i in range(3):
                channel.on_event("r", {"type": "eval", "step": i})
                inside.append(channel.poked)
        await asyncio.sleep(0)  # the loop runs the wake-up
        return inside, channel.wake.is_set(), len(channel.inbox)

    inside, woken, queued = asyncio.run(scenario())
    assert inside == [False, False, False] and woken and queued == 3


def test_the_pump_rests_less_than_a_frame_so_a_60_hz_producer_is_drained_as_it_arrives():
    async def scenario() -> float:
        channel = Channel("r", 1, asyncio.get_running_loop(), dict)
        return channel._next_tick(100.0) - 100.0

    rest = asyncio.run(scenario())
    # a rest overshoots by up to ~2 ms (epoll sleeps whole milliseconds, then wakes late):
    # it must still end before the producer's next hand-over, a frame interval on
    assert hub.FRAME_INTERVAL / 2 < rest <= hub.FRAME_INTERVAL - 0.003
