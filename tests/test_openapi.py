"""The OpenAPI document tells the whole truth: constraints, every status, one error shape,
and the same error codes as docs/protocol.md."""

import re

import pytest
from conftest import REPO
from fastapi.testclient import TestClient

from app.engine.config import MAX_HIDDEN_LAYERS, MAX_PARAMETERS, MAX_UNITS
from app.engine.datasets import DATASETS, FEATURES
from app.web.server import create_app
from app.web.settings import Settings

PROTOCOL = REPO / "docs" / "protocol.md"
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def doc(tmp_path_factory):
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data")))
    return TestClient(app).get("/openapi.json").json()


def documented_errors(doc: dict) -> dict[tuple[str, str], set[int]]:
    """(METHOD, path with {} for each parameter) -> the error statuses the document lists."""
    out = {}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                key = (method.upper(), re.sub(r"\{[^}]+\}", "{}", path))
                out[key] = {int(c) for c in operation["responses"] if int(c) >= 400}
    return out


def protocol_errors() -> dict[tuple[str, str], set[int]]:
    """The same, read from the HTTP table of docs/protocol.md (its `errors` column)."""
    out = {}
    for line in PROTOCOL.read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != 4 or cells[0] not in {m.upper() for m in METHODS}:
            continue
        path = re.sub(r"\{[^}]+\}", "{}", cells[1].strip("`").split("?")[0])
        out[(cells[0], path)] = {int(c) for c in re.findall(r"\d{3}", cells[3])}
    return out


def test_protocol_lists_exactly_the_documents_operations_and_error_codes(doc):
    in_protocol, in_document = protocol_errors(), documented_errors(doc)
    assert in_protocol, "no HTTP table found in docs/protocol.md"
    assert set(in_protocol) == set(in_document), "operations differ"
    for operation, codes in in_document.items():
        assert in_protocol[operation] == codes, operation


def test_every_error_response_uses_the_one_error_model(doc):
    paths = {re.sub(r"\{[^}]+\}", "{}", p): item for p, item in doc["paths"].items()}
    for (method, path), codes in documented_errors(doc).items():
        operation = paths[path][method.lower()]
        for code in codes:
            schema = operation["responses"][str(code)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, code)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_every_success_declares_its_body(doc):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            for code, response in operation["responses"].items():
                if code.startswith("2") and code != "204":
                    assert response.get("content"), (method, path, code)


def test_run_config_schema_has_every_constraint(doc):
    props = doc["components"]["schemas"]["RunConfig"]["properties"]
    assert props["dataset"]["enum"] == list(DATASETS)
    assert props["features"]["items"]["enum"] == list(FEATURES)
    assert props["features"]["uniqueItems"] is True and props["features"]["minItems"] == 1
    hidden = props["hidden"]
    assert hidden["maxItems"] == MAX_HIDDEN_LAYERS
    assert (hidden["items"]["minimum"], hidden["items"]["maximum"]) == (1, MAX_UNITS)
    assert f"{MAX_PARAMETERS:,} parameters" in hidden["description"]
    assert props["activation"]["enum"] == ["relu", "tanh", "sigmoid", "linear"]
    assert props["optimizer"]["enum"] == ["sgd", "momentum", "adam"]
    assert props["regularization"]["enum"] == ["none", "l1", "l2"]
    assert (props["batch_size"]["minimum"], props["batch_size"]["maximum"]) == (1, 512)
    schemas = doc["components"]["schemas"]
    actions = [
        a
        for name in ("Transport", "Tempo", "SetLive")
        for a in schemas[name]["properties"]["action"].get(
            "enum", [schemas[name]["properties"]["action"].get("const")]
        )
    ]
    assert actions == ["pause", "resume", "step", "stop", "tempo", "set"]
    assert schemas["SetLive"]["required"] == ["action", "changes"]
    assert schemas["LiveChanges"]["minProperties"] == 1


def test_create_links_to_what_can_be_done_with_the_run(doc):
    links = doc["paths"]["/api/runs"]["post"]["responses"]["201"]["links"]
    ids = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    assert {"get_run", "control_run", "delete_run"} <= set(links)
    for link in links.values():
        assert link["operationId"] in ids
        assert link["parameters"] == {"run_id": "$response.body#/id"}


def test_dataset_enum_follows_the_registry(tmp_path, monkeypatch):
    """When the registry grows (uploaded datasets), the served document grows with it."""
    client = TestClient(create_app(Settings(data_dir=tmp_path)))

    def enum() -> list[str]:
        doc = client.get("/openapi.json").json()
        return doc["components"]["schemas"]["RunConfig"]["properties"]["dataset"]["enum"]

    builtin = list(DATASETS)
    assert enum() == builtin
    monkeypatch.setitem(DATASETS, "uploaded", DATASETS["circle"])
    assert enum() == [*builtin, "uploaded"]
