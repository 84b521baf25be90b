"""Safe on stage: roles, websocket limits and HTTP hardening (issue 6), each rule tested."""

import asyncio
import hmac
import json
import logging
import re
import secrets
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import anyio
import httpx
import pytest
from _server import ThreadedServer, raw_handshake
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from app.live import channel as hub
from app.live.channel import Channel, Viewer
from app.live.ingest import INGEST_MESSAGE_BYTES
from app.web import security
from app.web.security import Access, ConnectionLimits
from app.web.server import create_app
from app.web.settings import Settings

TOKEN = secrets.token_urlsafe(24)
HEADER = {"X-Backbeat-Token": TOKEN}
SMALL_RUN = dict(dataset="circle", n_samples=100, hidden=[4], max_steps=1_000_000)
SMALL_RUN["stop_at_convergence"] = False  # plays on past its chime
REPO = Path(__file__).resolve().parents[1]


def receive(ws, timeout: float = 5.0) -> dict:
    """The next message from the server; a close raises WebSocketDisconnect with its code."""

    async def get():
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    message = ws.portal.call(get)
    ws._raise_on_close(message)
    return json.loads(message["text"])


def reply(ws, timeout: float = 5.0) -> dict:
    """The next answer to something the client sent (skips frames, events and pings)."""
    deadline = time.monotonic() + timeout
    while True:
        message = receive(ws, max(0.01, deadline - time.monotonic()))
        if message["type"] in ("ack", "error"):
            return message


def close_code(ws, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the server closes; return its code and reason."""
    deadline = time.monotonic() + timeout
    with pytest.raises(WebSocketDisconnect) as closed:  # noqa: PT012 - read until it closes
        while True:
            receive(ws, max(0.01, deadline - time.monotonic()))
    return closed.value.code, closed.value.reason


def paused_run(api, headers=None) -> str:
    r = api.client.post("/api/runs", json={**SMALL_RUN, "start_paused": True}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


# -- roles -----------------------------------------------------------------------------------


def test_private_bind_lets_everyone_control(api):
    assert api.client.get("/api/session").json() == {"role": "presenter", "shared": False}
    run_id = paused_run(api)
    assert api.control(run_id, "resume").status_code == 200
    assert api.client.delete(f"/api/runs/{run_id}").status_code == 204
    assert 'data-role="presenter"' in api.client.get("/").text


@pytest.mark.parametrize("headers", [{}, {"X-Backbeat-Token": "wrong"}, {"X-Backbeat-Token": ""}])
def test_shared_server_refuses_changes_without_the_token(serve, headers):
    with serve(presenter_token=TOKEN) as api:
        run_id = paused_run(api, HEADER)
        attempts = [
            ("POST", "/api/runs", {"json": SMALL_RUN}),
            ("POST", f"/api/runs/{run_id}/control", {"json": {"action": "resume"}}),
            ("DELETE", f"/api/runs/{run_id}", {}),
        ]
        for method, path, body in attempts:
            r = api.client.request(method, path, headers=headers, **body)
            assert r.status_code == 403, (method, path, r.text)
            assert "presenter" in r.json()["detail"]
        assert api.run(run_id)["state"] == "paused"  # nothing changed
        assert len(api.client.get("/api/runs").json()) == 1
        # reading stays open to everyone
        assert api.client.get(f"/api/runs/{run_id}", headers=headers).status_code == 200


def test_shared_server_obeys_the_token(serve):
    with serve(presenter_token=TOKEN) as api:
        run_id = paused_run(api, HEADER)
        resume = {"action": "resume"}
        r = api.client.post(f"/api/runs/{run_id}/control", json=resume, headers=HEADER)
        assert r.status_code == 200 and r.json()["state"] == "running"
        assert api.client.delete(f"/api/runs/{run_id}", headers=HEADER).status_code == 204


def test_tokens_are_compared_in_constant_time(monkeypatch):
    calls, compare = [], hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    access = Access(TOKEN)
    assert access.is_presenter(TOKEN) and not access.is_presenter(TOKEN[:-1] + "x")
    assert not access.is_presenter(None) and not access.is_presenter("ü")
    assert len(calls) == 3


def test_session_and_page_show_the_role(serve):
    with serve(presenter_token=TOKEN) as api:
        c = api.client
        assert c.get("/api/session").json() == {"role": "viewer", "shared": True}
        assert c.get("/api/session", headers=HEADER).json() == {"role": "presenter", "shared": True}
        viewer_page, presenter_page = c.get("/").text, c.get(f"/?token={TOKEN}").text
        assert 'data-role="viewer"' in viewer_page and 'data-role="presenter"' not in viewer_page
        assert 'data-role="presenter"' in presenter_page
        assert TOKEN not in presenter_page  # the page never echoes the token
        assert 'data-role="viewer"' in c.get("/?token=nope").text


def test_websocket_controls_are_for_presenters_only(serve):
    with serve(presenter_token=TOKEN) as api:
        run_id = paused_run(api, HEADER)
        control = {"type": "control", "action": "resume"}
        for query in ("", "?token=wrong"):
            with api.client.websocket_connect(f"/ws/runs/{run_id}{query}") as ws:
                assert receive(ws)["type"] == "hello"
                ws.send_json(control)
                refusal = {"type": "error", "detail": "refused: viewers cannot control the run"}
                assert reply(ws) == refusal
        assert api.run(run_id)["state"] == "paused"
        with api.client.websocket_connect(f"/ws/runs/{run_id}?token={TOKEN}") as ws:
            assert receive(ws)["type"] == "hello"
            ws.send_json(control)
            answer = reply(ws)
            assert answer["type"] == "ack" and answer["state"] == "running"


def test_share_prints_two_urls_and_never_logs_the_token(spawn, backbeat, tmp_path, wait_until):
    server = spawn(
        [*backbeat, "--share", "--port", "{port}", "--data", str(tmp_path / "d"), "--no-browser"]
    ).wait_healthy()
    out = wait_until(lambda: "presenter:" in (text := server.output()) and text)
    viewer_url = re.search(r"viewers:\s+(\S+)", out).group(1)
    presenter_url = re.search(r"presenter:\s+(\S+)", out).group(1)
    assert re.fullmatch(rf"http://[\w.:\[\]-]+:{server.port}/", viewer_url)
    token = re.fullmatch(rf"http://[\w.]+:{server.port}/\?token=([A-Za-z0-9_-]+)", presenter_url)[1]
    assert len(token) * 6 >= 128  # url-safe base64: 6 bits a character
    assert httpx.get(f"{server.url}/api/session").json()["role"] == "viewer"

    # use the token every way a presenter does, including paths that log errors
    url, header = server.url, {"X-Backbeat-Token": token}
    httpx.get(f"{url}/?token={token}")
    assert httpx.get(f"{url}/api/session", headers=header).json()["role"] == "presenter"
    r = httpx.post(f"{url}/api/runs", json={**SMALL_RUN, "start_paused": True}, headers=header)
    run_id = r.json()["id"]
    httpx.post(f"{url}/api/runs", json={"learning_rate": "x"}, headers=header)
    httpx.post(f"{url}/api/runs", content=b"{" * 100_000, headers=header)
    httpx.get(f"{url}/api/runs/nope?token={token}", headers=header)
    ws_url = url.replace("http", "ws")
    with connect(f"{ws_url}/ws/runs/{run_id}?token={token}") as ws:
        json.loads(ws.recv(5))
        ws.send(json.dumps({"type": "control", "action": "resume"}))
        ws.send("x" * 5000)  # closed by uvicorn's size limit
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(5)
    evil = "http://evil.example"
    with (
        pytest.raises((InvalidStatus, ConnectionClosed)),
        connect(f"{ws_url}/ws/runs/{run_id}?token={token}", origin=evil),
    ):
        pass
    with connect(f"{ws_url}/ws/runs/nope?token={token}") as ws, pytest.raises(ConnectionClosed):
        ws.recv(5)
    assert httpx.delete(f"{url}/api/runs/{run_id}", headers=header).status_code == 204
    server.proc.terminate()
    server.proc.wait(10)
    lines = [line for line in server.output().splitlines() if token in line]
    assert lines == [next(line for line in out.splitlines() if "presenter:" in line)]


def test_app_logs_never_carry_the_token(tmp_path, caplog):
    app = create_app(Settings(data_dir=tmp_path, presenter_token=TOKEN))

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    with caplog.at_level(logging.DEBUG), TestClient(app, raise_server_exceptions=False) as c:
        c.get(f"/?token={TOKEN}")
        c.get(f"/boom?token={TOKEN}", headers=HEADER)
        run_id = c.post("/api/runs", json=SMALL_RUN, headers=HEADER).json()["id"]
        c.post(f"/api/runs/{run_id}/control", json={"action": "bogus"}, headers=HEADER)
        with c.websocket_connect(f"/ws/runs/{run_id}?token={TOKEN}") as ws:
            receive(ws)
            ws.send_text("[" * 4000)
            reply(ws)
    client_side = ("httpx", "httpcore")  # the test's own HTTP client logs its URLs
    server_records = [r for r in caplog.records if not r.name.startswith(client_side)]
    text = "\n".join(logging.Formatter().format(r) for r in server_records)
    assert "RuntimeError: boom" in text  # the capture works, tracebacks included
    assert TOKEN not in text


# -- websocket -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://testserver.evil.example", "null", "https://testserve"]
)
def test_cross_site_origin_is_refused(api, origin):
    run_id = paused_run(api)
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        api.client.websocket_connect(f"/ws/runs/{run_id}", headers={"origin": origin}),
    ):
        pass
    assert refused.value.code == 4003


def test_same_origin_allow_listed_and_originless_clients_connect(serve):
    with serve(allowed_origins=("http://slides.example",)) as api:
        run_id = paused_run(api)
        for headers in ({}, {"origin": "http://testserver"}, {"origin": "http://slides.example"}):
            with api.client.websocket_connect(f"/ws/runs/{run_id}", headers=headers) as ws:
                assert receive(ws)["type"] == "hello"


def test_real_server_refuses_cross_site_handshake(tmp_path):
    with ThreadedServer(create_app(Settings(data_dir=tmp_path))) as srv:
        run_id = httpx.post(f"{srv.url}/api/runs", json={**SMALL_RUN, "start_paused": True})
        path = f"/ws/runs/{run_id.json()['id']}"
        with (
            pytest.raises(InvalidStatus) as refused,
            connect(srv.ws_url + path, origin="http://evil.example"),
        ):
            pass
        assert refused.value.response.status_code == 403
        with connect(srv.ws_url + path, origin=srv.url) as ws:
            assert json.loads(ws.recv(5))["type"] == "hello"


def test_oversized_message_closes_1009(api):
    run_id = paused_run(api)
    with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        receive(ws)
        ws.send_text(json.dumps({"type": "pong", "pad": "x" * 4060}))  # just under 4 KiB: fine
        ws.send_text(json.dumps({"type": "nope"}))
        assert reply(ws)["type"] == "error"
        ws.send_text("€" * 1400)  # 1,400 characters but 4,200 bytes
        assert close_code(ws) == (1009, "message over 4 KiB")


def test_uvicorn_refuses_oversized_messages_itself(spawn, backbeat, tmp_path):
    server = spawn(
        [*backbeat, "--port", "{port}", "--data", str(tmp_path / "d"), "--no-browser"]
    ).wait_healthy()
    run_id = httpx.post(f"{server.url}/api/runs", json={**SMALL_RUN, "start_paused": True})
    url = f"ws://127.0.0.1:{server.port}/ws/runs/{run_id.json()['id']}"
    # uvicorn's own cap is the ingest cap (1 MiB); past it the app never sees the message
    with connect(url, max_size=None) as ws:
        json.loads(ws.recv(5))
        ws.send("x" * (INGEST_MESSAGE_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(5)
    assert closed.value.rcvd.code == 1009
    assert closed.value.rcvd.reason != "message over 4 KiB"  # refused before the app saw it
    # a viewer's message over 4 KiB still gets through uvicorn and is refused by the app
    with connect(url) as ws:
        json.loads(ws.recv(5))
        ws.send("x" * 4097)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(5)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1009, "message over 4 KiB")


def test_flooding_closes_1008_and_a_steady_client_stays(serve):
    with serve(message_rate=20.0) as api:
        run_id = paused_run(api)
        with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
            receive(ws)
            end = time.monotonic() + 1.5  # 10 a second: half the allowed rate
            while time.monotonic() < end:
                ws.send_text('{"type": "nope"}')
                assert reply(ws)["type"] == "error"
                time.sleep(0.1)
            for _ in range(100):
                ws.send_text('{"type": "pong"}')
            assert close_code(ws) == (1008, "too many messages")


def test_silent_client_is_dropped_within_the_heartbeat_timeout(serve):
    with serve(heartbeat_interval=0.2, heartbeat_timeout=0.6) as api:
        run_id = paused_run(api)
        with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
            start = time.monotonic()
            receive(ws)
            assert close_code(ws, timeout=3) == (4010, "no answer to pings")
            assert time.monotonic() - start < 0.6 + 0.2 + 0.5


def test_client_answering_pings_stays(serve):
    with serve(heartbeat_interval=0.2, heartbeat_timeout=0.6) as api:
        run_id = paused_run(api)
        with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
            receive(ws)
            pings, end = 0, time.monotonic() + 2.0  # over three timeouts
            while time.monotonic() < end:
                if receive(ws, timeout=1.0)["type"] == "ping":
                    pings += 1
                    ws.send_text('{"type": "pong"}')
            assert pings >= 5
            ws.send_text('{"type": "nope"}')
            assert reply(ws)["type"] == "error"  # still served


@pytest.mark.parametrize(
    ("caps", "reason"),
    [
        ({"max_connections": 2, "max_connections_per_address": 10}, "server full: 2 connections"),
        ({"max_connections": 10, "max_connections_per_address": 2}, "too many connections from"),
    ],
)
def test_connection_caps_refuse_with_1013_and_a_reason(serve, caps, reason, wait_until):
    with serve(**caps) as api:
        run_id = paused_run(api)
        path = f"/ws/runs/{run_id}"
        with api.client.websocket_connect(path) as first, api.client.websocket_connect(path):
            receive(first)
            with api.client.websocket_connect(path) as third:
                code, why = close_code(third)
                assert code == 1013 and why.startswith(reason)
        wait_until(lambda: not api.client.app.state.limits.open, 5, "the slots to be released")
        with api.client.websocket_connect(path) as again:  # slots come back
            assert receive(again)["type"] == "hello"


def test_connection_caps_count_each_address():
    limits = ConnectionLimits(total=3, per_address=2)
    for _ in range(2):
        assert limits.refuse_reason("10.0.0.1") is None
        limits.acquire("10.0.0.1")
    assert "your address" in limits.refuse_reason("10.0.0.1")
    assert limits.refuse_reason("10.0.0.2") is None
    limits.acquire("10.0.0.2")
    assert "server full" in limits.refuse_reason("10.0.0.3")
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        limits.release(address)
    assert limits.open == {}


def test_a_full_viewer_queue_is_evicted_without_holding_up_the_others():
    async def scenario():
        channel = Channel("r", 1, asyncio.get_running_loop(), dict)
        with channel.subscribe() as (slow, _), channel.subscribe() as (fast, _):
            slow.queue = asyncio.Queue(3)
            for _ in range(10):
                channel._broadcast({"type": "frame"})
                await fast.take()  # the fast viewer reads everything
            assert slow.evicted and slow.dropped.is_set() and channel.evictions == 1
            assert slow not in channel.viewers and fast in channel.viewers
            assert slow.queue.get_nowait() is None and slow.queue.empty()
            assert not slow.offer("more")

    asyncio.run(scenario())


def test_evicted_session_closes_4008(api, wait_until):
    run_id = paused_run(api)
    with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        receive(ws)
        viewers = api.client.app.state.manager.get(run_id).channel.viewers
        (viewer,) = viewers

        async def overflow():  # on the server's loop, faster than any socket drains
            for _ in range(hub.VIEWER_QUEUE + 1):
                viewer.offer('{"type": "frame"}')

        api.client.portal.call(overflow)
        assert close_code(ws) == (4008, "viewer too slow: evicted")
        wait_until(lambda: not viewers, 5, "the viewer to be unsubscribed")


def test_stalled_socket_is_evicted_and_others_keep_streaming(tmp_path, monkeypatch):
    monkeypatch.setattr(Viewer.__init__, "__defaults__", (20, "audience"))  # evict after 20 frames
    settings = Settings(data_dir=tmp_path, heartbeat_interval=1.0, heartbeat_timeout=30.0)
    app = create_app(settings)
    with ThreadedServer(app) as srv:
        run = httpx.post(f"{srv.url}/api/runs", json={**SMALL_RUN, "steps_per_second": None})
        run_id = run.json()["id"]
        channel = app.state.manager.get(run_id).channel
        arrivals, stop = [], threading.Event()

        def watch():
            with connect(f"{srv.ws_url}/ws/runs/{run_id}", max_size=None) as ws:
                while not stop.is_set():
                    message = json.loads(ws.recv(5))
                    arrivals.append((time.monotonic(), message.get("seq"), message["type"]))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        stalled = raw_handshake(srv.port, f"/ws/runs/{run_id}", rcvbuf=4096)
        try:
            deadline = time.monotonic() + 15
            while not (channel.evictions == 1 and dict(app.state.limits.open) == {"127.0.0.1": 1}):
                assert time.monotonic() < deadline, (channel.evictions, app.state.limits.open)
                time.sleep(0.05)
            assert len(channel.viewers) == 1  # the watcher, still subscribed
            time.sleep(0.3)
        finally:
            stop.set()
            watcher.join(10)
            stalled.close()
        times = [t for t, _, _ in arrivals]
        seqs = [s for _, s, kind in arrivals if kind != "ping"]
        assert len(times) > 20 and max(b - a for a, b in zip(times, times[1:], strict=False)) < 1.0
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no frame lost


# -- HTTP ------------------------------------------------------------------------------------


def csp_directives(header: str) -> dict[str, list[str]]:
    parts = (d.split() for d in header.split(";") if d.strip())
    return {name: values for name, *values in parts}


def test_security_headers(api):
    for path in ("/", "/api/health", "/api/runs/nope", "/static/js/main.js"):
        r = api.client.get(path)
        csp = csp_directives(r.headers["content-security-policy"])
        script = csp.get("script-src", csp["default-src"])
        assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
        assert csp["frame-ancestors"] == ["'none'"] and csp["default-src"] == ["'self'"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


class PageAudit(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems, self.in_script = [], False

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script":
            self.in_script = True
            if not names.get("src", "").startswith("/static/"):
                self.problems.append(f"script without a local src: {attrs}")
        if tag == "style":
            self.problems.append("inline <style>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"{tag} has handler {name}={value!r}")
            if name == "style":
                self.problems.append(f"{tag} has style={value!r}")
            if name in ("src", "href") and value and re.match(r"(https?:)?//|javascript:", value):
                self.problems.append(f"{tag} loads {value!r} from elsewhere")

    def handle_endtag(self, tag):
        self.in_script = self.in_script and tag != "script"

    def handle_data(self, data):
        if self.in_script and data.strip():
            self.problems.append(f"inline script body: {data[:40]!r}")


def test_page_has_no_inline_script_handlers_or_styles(serve):
    with serve(presenter_token=TOKEN) as api:
        for path in ("/", f"/?token={TOKEN}"):
            audit = PageAudit()
            audit.feed(api.client.get(path).text)
            assert audit.problems == []
    scripts = "\n".join(p.read_text() for p in (REPO / "static" / "js").glob("*.js"))
    assert not re.search(r"\beval\s*\(|new\s+Function\s*\(", scripts)


def test_request_bodies_over_the_limit_get_413(serve):
    with serve(max_body_bytes=1024) as api:
        big = json.dumps({**SMALL_RUN, "seed": 1, "pad": " " * 2000}).encode()
        h = {"content-type": "application/json"}
        r = api.client.post("/api/runs", content=big, headers=h)
        assert r.status_code == 413 and r.headers["x-content-type-options"] == "nosniff"
        chunks = (big[i : i + 100] for i in range(0, len(big), 100))  # no Content-Length
        assert api.client.post("/api/runs", content=chunks, headers=h).status_code == 413
        r = api.client.post("/api/runs", json={**SMALL_RUN, "start_paused": True})
        assert r.status_code == 201  # small bodies still pass


def test_unhandled_error_is_a_plain_500(tmp_path):
    app = create_app(Settings(data_dir=tmp_path))

    @app.get("/api/boom")
    def boom():
        raise RuntimeError(f"secret state in {__file__}")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/boom")
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json() == {"detail": "internal error; the server log has the details"}
    assert "Traceback" not in r.text and "secret" not in r.text and ".py" not in r.text
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "body",
    [
        b'{"learning_rate": NaN}',
        b'{"noise": Infinity}',
        b'{"seed": -Infinity}',
        b'{"hidden": [1e999]}',
    ],
)
def test_non_finite_numbers_are_a_422_not_a_crash(api, body):
    r = api.client.post("/api/runs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"][:1] == ["body"] and len(error["loc"]) >= 2 and error["msg"]
