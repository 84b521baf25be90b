"""Runs: create, list, inspect, control, export and delete."""

import asyncio
import csv
import io
from typing import Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field

from app.api.deps import Manager, Presenter, Store, not_found
from app.config import RunConfig
from app.manager import LiveRun, TooManyRuns
from app.runner import ControlError
from app.steps import LAYER_COLUMNS, SCALAR_COLUMNS, block_row
from app.wire import block_columns, clean, column, dumps

router = APIRouter(prefix="/api/runs", tags=["runs"])


class Control(BaseModel):
    action: Literal["pause", "resume", "step", "stop", "tempo"]
    steps_per_second: float | None = Field(
        None, ge=0.1, le=10_000.0, description="for `tempo`; null runs unpaced"
    )


@router.post("", status_code=201, dependencies=[Presenter])
async def create_run(config: RunConfig, manager: Manager) -> dict:
    try:
        run = await manager.create(config)
    except TooManyRuns as exc:
        raise HTTPException(429, str(exc)) from exc
    return {"id": run.id, "state": run.runner.state}


@router.get("")
def list_runs(manager: Manager, store: Store) -> list[dict]:
    """Every stored run, newest first, with live runs' current state and step."""
    runs = store.list_runs()
    for record in runs:
        live = manager.get(record["id"])
        if live is not None:
            record.update(state=live.runner.state, step=live.runner.current_step)
    return clean(runs)


def _record(run_id: str, manager: Manager, store: Store) -> dict:
    record = store.get_run(run_id)
    if record is None:
        raise not_found(run_id)
    live = manager.get(run_id)
    if live is not None:
        record.update(live.describe())
        record["summary"] = live.runner.summary
        record["latest"] = live.channel.latest
    else:
        last = store.read_steps(run_id, start=max(0, record["step"]))
        record["latest"] = block_row(last, len(last["step"]) - 1) if len(last["step"]) else None
    return record


@router.get("/{run_id}")
def get_run(run_id: str, manager: Manager, store: Store) -> dict:
    return clean(_record(run_id, manager, store))


@router.post("/{run_id}/control", dependencies=[Presenter])
async def control(run_id: str, body: Control, manager: Manager, store: Store) -> dict:
    """Pause, resume, single-step (paused runs only), change tempo, or stop a live run."""
    run = manager.get(run_id)
    if run is None:  # a run from an earlier server lifetime is known, but can't be controlled
        record = await asyncio.to_thread(store.get_run, run_id)
        if record is None:
            raise not_found(run_id)
        raise HTTPException(409, f"cannot {body.action}: the run is {record['state']}")
    try:
        return await apply_control(run, body)
    except ControlError as exc:
        raise HTTPException(409, str(exc)) from exc


async def apply_control(run: LiveRun, body: Control) -> dict:
    """Carry out one control on a live run; raises ControlError when it makes no sense now."""
    runner = run.runner
    metrics = await asyncio.to_thread(runner.control, body.action, body.steps_per_second)
    answer = {"metrics": metrics} if body.action == "step" else {}
    return clean(
        {
            "id": run.id,
            "state": runner.state,
            "step": runner.current_step,
            "steps_per_second": runner.steps_per_second,
            **answer,
        }
    )


@router.get("/{run_id}/model")
async def model(run_id: str, manager: Manager, store: Store) -> dict:
    """Architecture and parameters; weights[i][j] connects input i to unit j."""
    run = manager.get(run_id)
    if run is not None:
        try:
            return clean(await asyncio.to_thread(run.runner.model))
        except ControlError as exc:
            raise HTTPException(409, str(exc)) from exc
    saved = store.read_events(run_id, types={"model"}) if store.get_run(run_id) else None
    if saved is None:
        raise not_found(run_id)
    if not saved:
        raise HTTPException(404, f"run {run_id!r} ended without a saved model")
    return {k: v for k, v in saved[-1].items() if k != "type"}


@router.get("/{run_id}/data")
async def data(run_id: str, store: Store) -> dict:
    """The train and test points with their targets, exactly as the network sees them."""
    record = store.get_run(run_id)
    if record is None:
        raise not_found(run_id)
    config = RunConfig.model_validate(record["config"])
    ds = await asyncio.to_thread(config.make_data)
    out = {
        "features": config.input_features,
        "task": ds.spec.task,
        "n_classes": ds.spec.n_classes,
        "extent": ds.extent,
        "train": {"x": ds.x_train.tolist(), "y": ds.y_train.tolist()},
        "test": {"x": ds.x_test.tolist(), "y": ds.y_test.tolist()},
    }
    if ds.points_train is not None:
        out["train"]["points"] = ds.points_train.tolist()
        out["test"]["points"] = ds.points_test.tolist()
    return clean(out)


@router.get("/{run_id}/metrics", response_model=None)
async def metrics(
    run_id: str,
    store: Store,
    every: int = Query(1, ge=1, le=1_000_000),
    format: Literal["json", "csv"] = "json",
) -> dict | Response:
    """Every step's metrics (every N-th with `every`), as columnar JSON or CSV."""
    record = store.get_run(run_id)
    if record is None:
        raise not_found(run_id)
    block = await asyncio.to_thread(store.read_steps, run_id, every=every)
    if format == "json":
        body = {"id": run_id, "layers": record["layers"], **block_columns(block)}
        return Response(dumps(body), media_type="application/json")
    n_layers = len(record["layers"]) - 1
    header = list(SCALAR_COLUMNS) + [
        f"{name}_{k}" for name in LAYER_COLUMNS for k in range(n_layers)
    ]
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    cols = [column(name, block[name]) for name in SCALAR_COLUMNS]
    cols += [column(name, block[name][:, k]) for name in LAYER_COLUMNS for k in range(n_layers)]
    texts = [c.astype(str) if c.dtype == np.float32 else c.tolist() for c in cols]
    writer.writerows(zip(*texts, strict=True))
    return Response(
        text.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="backbeat-{run_id}.csv"'},
    )


@router.delete("/{run_id}", status_code=204, dependencies=[Presenter])
async def delete_run(run_id: str, manager: Manager, store: Store) -> Response:
    if store.get_run(run_id) is None and manager.get(run_id) is None:
        raise not_found(run_id)
    await manager.delete(run_id)
    await asyncio.to_thread(store.delete_run, run_id)
    return Response(status_code=204)
