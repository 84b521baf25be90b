"""Datasets: the built-in catalogue beside uploaded and drawn sets; upload, inspect and delete.

`POST /api/datasets` takes a CSV file (multipart) or rows as JSON; the first row names
the columns. Every refusal is one sentence naming the row or column, and nothing
already stored changes.
"""

import asyncio
import re
from pathlib import PurePath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile

from app.engine.config import DIGITS_INPUTS, RunConfig, TableRef, field_bounds, unknown_dataset
from app.engine.datasets import DATASETS, FEATURES
from app.engine.tables import (
    MAX_BYTES,
    MAX_COLUMNS,
    MAX_ROWS,
    Table,
    TableError,
    build_table,
    check_name,
    parse_csv,
)
from app.store.tables import DuplicateName, TableStore, TooManySets
from app.web.routes.deps import Presenter
from app.web.routes.errors import Error

router = APIRouter(prefix="/api/datasets", tags=["datasets"])

MAX_REQUEST_BYTES = MAX_BYTES + 1024 * 1024  # the 5 MiB file plus form fields / JSON syntax
ALLOWED_CONTENT = ("multipart/form-data", "application/json")
Task = Literal["classification", "regression"]


def get_tables(request: Request) -> TableStore:
    return request.app.state.tables


Tables = Annotated[TableStore, Depends(get_tables)]


class DatasetRows(BaseModel):
    """A set as JSON: the first row names the columns, the others hold the values."""

    name: str | None = Field(None, description="defaults to the kind and the content hash")
    rows: list[list[str | float | int | None]] = Field(
        min_length=1, max_length=MAX_ROWS + 2, description="header row first"
    )
    target: str | None = Field(None, description="the column to predict; default: the last")
    task: Task | None = Field(None, description="default: classification for ≤ 16 labels")
    kind: Literal["csv", "drawn"] = Field(
        "csv", description="csv: inputs are standardised; drawn: points in [-6, 6]², as drawn"
    )


class DatasetInfo(BaseModel):
    """One entry of the catalogue (uploaded sets add their columns, size and hash)."""

    model_config = {"extra": "allow"}
    name: str
    source: Literal["builtin", "uploaded"]
    task: Task
    n_classes: int


def _error(description: str) -> dict:
    return {"model": Error, "description": description}


LIMITS = (
    f"a CSV up to {MAX_BYTES // 2**20} MiB, {MAX_ROWS:,} rows and {MAX_COLUMNS} columns,"
    " UTF-8, the first row naming the columns"
)
UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "additionalProperties": False,
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": LIMITS},
                    "name": {"type": "string", "maxLength": 64},
                    "target": {"type": "string"},
                    "task": {"type": "string", "enum": ["classification", "regression"]},
                },
            }
        },
        "application/json": {"schema": DatasetRows.model_json_schema()},
    },
}


# from an uploaded set to reading and deleting it (the stateful fuzzer follows these)
DATASET_LINKS = {
    op: {"operationId": op, "parameters": {"name": "$response.body#/name"}}
    for op in ("get_dataset", "delete_dataset")
}


def builtin_catalogue() -> list[dict]:
    """Every built-in set with its task, input features and the parameters a run may set."""
    return [
        {
            "name": spec.name,
            "source": "builtin",
            "task": spec.task,
            "n_classes": spec.n_classes,
            "description": spec.description,
            "features": list(FEATURES) if spec.is_2d else [],
            "default_features": ["x1", "x2"] if spec.is_2d else [],
            "n_inputs": 2 if spec.is_2d else DIGITS_INPUTS,
            "params": {k: field_bounds(k) for k in ("n_samples", "noise", "train_ratio")},
        }
        for spec in DATASETS.values()
    ]


def catalogue_entry(info: dict) -> dict:
    """An uploaded set in the catalogue's shape, so the page treats it like a built-in one."""
    is_2d = len(info["inputs"]) == 2
    how = "drawn" if info["kind"] == "drawn" else "uploaded; inputs standardised"
    return {
        **info,
        "description": f"{info['rows']:,} rows × {len(info['inputs'])} inputs ({how})",
        "features": list(FEATURES) if is_2d else [],
        "default_features": ["x1", "x2"] if is_2d else [],
        "n_inputs": len(info["inputs"]),
    }


class DatasetWithRows(DatasetInfo):
    """An uploaded set's catalogue entry with its rows as uploaded."""

    data: list[list[str | float | int | None]] = Field(description="header row first")


@router.get("", response_model=list[DatasetInfo], operation_id="list_datasets")
def list_datasets(tables: Tables) -> list[dict]:
    """Built-in sets (`source: "builtin"`), then uploaded and drawn ones (`"uploaded"`)."""
    return builtin_catalogue() + [catalogue_entry(i) for i in tables.list()]


@router.get(
    "/{name}",
    operation_id="get_dataset",
    response_model=DatasetWithRows,
    responses={404: _error("no uploaded set of that name")},
)
def get_dataset(name: str, tables: Tables) -> dict:
    """An uploaded set's description and its rows as they came (the header first)."""
    info, table = tables.info(name), tables.by_name(name)
    if info is None or table is None:
        raise HTTPException(404, f"no uploaded dataset named {name!r}")
    return {**catalogue_entry(info), "data": table.rows()}


@router.post(
    "",
    status_code=201,
    operation_id="upload_dataset",
    response_model=DatasetInfo,
    dependencies=[Presenter],
    max_body_size=MAX_REQUEST_BYTES,
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses={
        201: {"links": DATASET_LINKS},
        200: {
            "model": DatasetInfo,
            "description": "the same rows were already stored so named",
            "links": DATASET_LINKS,
        },
        403: _error("viewers of a shared server cannot upload"),
        409: _error("a different set has that name, or too many sets are stored"),
        413: _error(f"the file is over {MAX_BYTES // 2**20} MiB"),
        415: _error("neither multipart/form-data nor JSON"),
        422: {"model": Error, "description": "unusable data: the message names the row or column"},
    },
)
async def upload(request: Request, response: Response, tables: Tables) -> dict:
    """Upload a CSV (multipart field `file`) or JSON rows; choose `target` and `task`."""
    kind, name, rows, target, task = await _read_upload(request)
    try:
        table = await asyncio.to_thread(build_table, rows, target, task, kind)
        name = check_name(name or f"{'drawn' if kind == 'drawn' else 'upload'}-{table.hash[:8]}")
        info, created = await asyncio.to_thread(tables.save, name, table)
    except TableError as exc:
        raise HTTPException(422, str(exc)) from exc
    except (DuplicateName, TooManySets) as exc:
        raise HTTPException(409, str(exc)) from exc
    if not created:
        response.status_code = 200
    request.app.openapi_schema = None  # the document lists the datasets a run may name
    return catalogue_entry(info)


async def _read_upload(request: Request) -> tuple[str, str | None, list, str | None, str | None]:
    """(kind, name, rows, target, task) from a multipart form or a JSON body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            body = DatasetRows.model_validate_json(await request.body())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise HTTPException(422, f"{where}: {first['msg']}" if where else first["msg"]) from exc
        return body.kind, body.name, body.rows, body.target, body.task
    if content_type != "multipart/form-data":
        raise HTTPException(415, "send the CSV as multipart/form-data (field `file`) or JSON rows")
    form = await request.form(max_files=1, max_fields=8)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, "the form has no file: send the CSV in the field `file`")
    data = await upload.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise HTTPException(413, f"the file is over {MAX_BYTES // 2**20} MiB; that is the limit")
    fields = {k: form.get(k) for k in ("name", "target", "task")}
    if any(v is not None and not isinstance(v, str) for v in fields.values()):
        raise HTTPException(422, "name, target and task are text fields, not files")
    task = fields["task"] or None
    if task not in (None, "classification", "regression"):
        raise HTTPException(422, f"unknown task {task!r}; choose classification or regression")
    name = fields["name"] or _name_from_file(upload.filename)
    try:
        rows = await asyncio.to_thread(parse_csv, data)
    except TableError as exc:
        raise HTTPException(422, str(exc)) from exc
    return "csv", name, rows, fields["target"] or None, task


def _name_from_file(filename: str | None) -> str | None:
    """`lecture 3.csv` → `lecture 3`: the file's stem with unusual characters dropped."""
    if not filename:
        return None
    stem = re.sub(r"[^A-Za-z0-9 _.()-]", "", PurePath(filename).stem).strip(" _.()-")
    return stem[:64] or None


@router.delete(
    "/{name}",
    status_code=204,
    operation_id="delete_dataset",
    dependencies=[Presenter],
    responses={
        403: _error("viewers of a shared server cannot delete"),
        404: _error("no uploaded set of that name"),
        409: _error("built-in sets cannot be deleted"),
    },
)
async def delete_dataset(name: str, request: Request, tables: Tables) -> Response:
    """Forget an uploaded set's name; runs trained on it keep their data."""
    if name in DATASETS:
        raise HTTPException(409, f"{name!r} is built in and cannot be deleted")
    if not await asyncio.to_thread(tables.delete, name):
        raise HTTPException(404, f"no uploaded dataset named {name!r}")
    request.app.openapi_schema = None
    return Response(status_code=204)


def resolve(config: RunConfig, tables: TableStore) -> tuple[RunConfig, Table | None]:
    """A run on an uploaded set: its config gains the set's ref, the job gets its rows."""
    if config.dataset in DATASETS:
        return config, None
    table = tables.by_name(config.dataset)
    if table is None:
        raise HTTPException(
            422,
            [
                {
                    "loc": ["body", "dataset"],
                    "msg": unknown_dataset(config.dataset),
                    "type": "value_error",
                }
            ],
        )
    ref = TableRef(
        hash=table.hash,
        kind=table.kind,
        task=table.task,
        n_classes=table.n_classes,
        inputs=table.inputs,
        rows=len(table.y),
    )
    try:
        checked = RunConfig.model_validate({**config.model_dump(), "table": ref.model_dump()})
    except ValidationError as exc:
        detail = [
            {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()
        ]
        raise HTTPException(422, detail) from exc
    return checked, table
