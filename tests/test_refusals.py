"""Every refusal is the one JSON error shape, 413 and 400 included; 405 says what is allowed."""

import json
import socket

import pytest
from _server import ThreadedServer

from app.web.server import create_app
from app.web.settings import Settings

SMALL_RUN = {"dataset": "circle", "n_samples": 100, "hidden": [4], "start_paused": True}
JSON = {"content-type": "application/json"}


def assert_error(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json", r.headers
    body = r.json()
    assert set(body) == {"detail"} and body["detail"], body
    return body


def test_413_is_json_whether_declared_or_streamed(serve):
    with serve(max_body_bytes=1024) as api:
        big = json.dumps({**SMALL_RUN, "pad": " " * 2000}).encode()
        declared = api.client.post("/api/runs", content=big, headers=JSON)
        assert "1,024 bytes" in assert_error(declared, 413)["detail"]
        chunks = (big[i : i + 100] for i in range(0, len(big), 100))  # no Content-Length
        assert_error(api.client.post("/api/runs", content=chunks, headers=JSON), 413)
        # a route that never reads its body, and one that does not exist, refuse alike
        assert_error(api.client.request("GET", "/api/health", content=big), 413)
        assert_error(api.client.request("PUT", "/api/nowhere", content=big), 413)
        assert api.client.post("/api/runs", json=SMALL_RUN).status_code == 201


def test_413_comes_before_the_body_is_sent(tmp_path):
    """A declared oversized body is refused at once: the server waits for none of it."""
    app = create_app(Settings(data_dir=tmp_path, max_body_bytes=1024))
    with ThreadedServer(app) as srv, socket.create_connection(("127.0.0.1", srv.port), 10) as s:
        s.sendall(
            b"POST /api/runs HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 100000000\r\n\r\n"
        )
        s.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["detail"].startswith("the request body is over")


@pytest.mark.parametrize(
    "path, body",
    [("/api/runs", b'{"dataset": "\xff\xfe"}'), ("/api/runs/x/control", b"\x80\x81")],
)
def test_unreadable_body_is_a_json_400(api, path, body):
    assert_error(api.client.post(path, content=body, headers=JSON), 400)


def test_text_that_is_not_json_is_a_422_naming_the_body(api):
    r = api.client.post("/api/runs", content=b"not json", headers=JSON)
    (error,) = r.status_code == 422 and r.json()["detail"]
    assert error["loc"][0] == "body" and error["type"] == "json_invalid"


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("OPTIONS", "/api/runs", "GET, POST"),
        ("PUT", "/api/runs", "GET, POST"),
        ("HEAD", "/api/runs", "GET, POST"),  # FastAPI routes answer only what they declare
        ("OPTIONS", "/api/runs/abc", "DELETE, GET"),
        ("PATCH", "/api/runs/abc", "DELETE, GET"),
        ("GET", "/api/runs/abc/control", "POST"),
        ("OPTIONS", "/api/runs/external", "POST"),
        ("DELETE", "/api/health", "GET"),
        ("POST", "/static/js/api.js", "GET, HEAD"),
    ],
)
def test_405_lists_every_method_the_path_has(api, method, path, allowed):
    r = api.client.request(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allowed
    if method != "HEAD":  # a HEAD answer has no body
        assert method in assert_error(r, 405)["detail"]


def test_unknown_path_is_a_json_404(api):
    assert_error(api.client.get("/api/nowhere"), 404)
    assert_error(api.client.get("/static/nowhere.js"), 404)


@pytest.mark.parametrize(
    "changes, loc",
    [
        (None, ["body", "changes"]),
        ({}, ["body", "changes"]),
        ({"learning_rate": None}, ["body", "changes", "learning_rate"]),
    ],
)
def test_a_set_without_usable_changes_is_a_422_naming_the_field(api, changes, loc):
    run_id = api.create(**SMALL_RUN)
    r = api.control(run_id, "set", changes=changes)
    (error,) = assert_error(r, 422)["detail"]  # a list of wrong fields, as every 422 is
    assert error["loc"] == loc and error["msg"]


def test_only_set_takes_changes_as_the_document_says(api):
    """Each action is its own schema: `set` requires `changes`, the others do not declare it,
    so a `changes` sent along with them is ignored (schemathesis: the document and the
    server agree either way)."""
    doc = api.client.get("/openapi.json").json()["components"]["schemas"]
    assert "changes" in doc["SetLive"]["required"]
    assert "changes" not in doc["Transport"]["properties"]
    run_id = api.create(**SMALL_RUN)
    r = api.control(run_id, "resume", changes={})
    assert r.status_code == 200 and r.json()["state"] == "running"
