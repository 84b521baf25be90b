"""Runs: create, list, inspect, control, export and delete."""

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field, TypeAdapter

from app.engine.config import STRUCTURAL_FIELDS, JsonFloat, LiveChanges, RunConfig
from app.engine.steps import block_row, finite
from app.live.handle import ControlError, control
from app.live.manager import LiveRun, TooManyRuns
from app.live.replay import is_outside
from app.live.wire import block_columns, dumps
from app.web.export import EVENT_TYPES, OUTSIDE_EVENTS, describe_model, metrics_csv, outside_columns
from app.web.routes.datasets import Tables, resolve
from app.web.routes.deps import Manager, Presenter, Store, not_found
from app.web.routes.errors import errors
from app.web.routes.schemas import (
    CSV,
    ControlAnswer,
    Metrics,
    Model,
    RunCreated,
    RunData,
    RunDetail,
    RunListing,
)

router = APIRouter(prefix="/api/runs", tags=["runs"])
MAX_STEP = 2**63 - 1  # steps are SQLite integers
# what a sound export needs besides the steps, and where the knobs were turned
CUE_EVENTS = ("chime", "alarm", "overfit", "change", "plateau", "plateau_end")


def run_links() -> dict:
    """OpenAPI links from an answer carrying a run's `id` to what can be done with that run."""
    operations = ("get_run", "control_run", "get_model", "get_data", "get_metrics", "delete_run")
    return {
        op: {"operationId": op, "parameters": {"run_id": "$response.body#/id"}} for op in operations
    }


class Transport(BaseModel):
    """Pause, resume, one step (a paused run only) or stop."""

    action: Literal["pause", "resume", "step", "stop"]


class Tempo(BaseModel):
    """A new tempo for the run."""

    action: Literal["tempo"]
    steps_per_second: JsonFloat | None = Field(
        None, ge=0.1, le=10_000.0, description="null runs unpaced"
    )


class SetLive(BaseModel):
    """Live knobs: the run keeps its id and steps on with the changed settings."""

    action: Literal["set"]
    changes: LiveChanges = Field(description="the live settings to change (at least one)")


Control = Annotated[Transport | Tempo | SetLive, Field(discriminator="action")]
read_control = TypeAdapter(Control).validate_python


class NeedsNewRun(ControlError):
    """A `set` naming a setting that shapes the data or the network (409)."""


def live_changes(body: SetLive) -> dict:
    """The changes a `set` asks for; raises NeedsNewRun for structural settings."""
    changes = body.changes.model_dump(exclude_unset=True)
    structural = [k for k in STRUCTURAL_FIELDS if k in changes]
    if structural:
        raise NeedsNewRun(
            f"{', '.join(structural)} shape the data or the network: start a new run "
            "to change them (live: learning_rate, optimizer, regularization, "
            "regularization_rate, batch_size, max_steps, stop_at_convergence)"
        )
    return changes


@router.post(
    "",
    status_code=201,
    dependencies=[Presenter],
    operation_id="create_run",
    response_model=RunCreated,
    responses={201: {"links": run_links()}, **errors(403, 429)},
)
async def create_run(config: RunConfig, manager: Manager, tables: Tables) -> dict:
    """Start a run (or hold it paused); on an uploaded or drawn set its rows go with it."""
    config, table = await asyncio.to_thread(resolve, config, tables)
    try:
        run = await manager.create(config, table)
    except TooManyRuns as exc:
        raise HTTPException(429, str(exc)) from exc
    return {"id": run.id, "state": run.handle.state}


@router.get("", operation_id="list_runs", response_model=list[RunListing])
def list_runs(manager: Manager, store: Store) -> list[dict]:
    """Every stored run, newest first, with live runs' current state and step."""
    runs = store.list_runs()
    for record in runs:
        live = manager.get(record["id"])
        if live is not None:
            record.update(state=live.handle.state, step=live.handle.current_step)
    return finite(runs)


def _record(run_id: str, manager: Manager, store: Store) -> dict:
    record = store.get_run(run_id)
    if record is None:
        raise not_found(run_id)
    live = manager.get(run_id)
    if live is not None:
        record.update(live.describe())
        record["summary"] = live.handle.summary
        record["latest"] = live.channel.latest
    else:
        last = store.read_steps(run_id, start=max(0, record["step"]))
        record["latest"] = block_row(last, len(last["step"]) - 1) if len(last["step"]) else None
    return record


@router.get("/{run_id}", operation_id="get_run", response_model=RunDetail, responses=errors(404))
def get_run(run_id: str, manager: Manager, store: Store) -> dict:
    return finite(_record(run_id, manager, store))


@router.post(
    "/{run_id}/control",
    dependencies=[Presenter],
    operation_id="control_run",
    response_model=ControlAnswer,
    responses={200: {"links": run_links()}, **errors(403, 404, 409)},
)
async def control_run(run_id: str, body: Control, manager: Manager, store: Store) -> dict:
    """Pause, resume, single-step (paused runs only), change tempo, set live knobs, or stop."""
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
    handle = run.handle
    if body.action == "set":
        changes = live_changes(body)
        result = await asyncio.to_thread(control, handle, "set", changes=changes)
        run.config = RunConfig.model_validate(result["config"])
        answer = {"config": result["config"], "notes": result["notes"]}
    else:
        tempo = body.steps_per_second if isinstance(body, Tempo) else None
        metrics = await asyncio.to_thread(control, handle, body.action, tempo)
        answer = {"metrics": metrics} if body.action == "step" else {}
    return finite(
        {
            "id": run.id,
            "state": handle.state,
            "step": handle.current_step,
            "steps_per_second": handle.steps_per_second,
            **answer,
        }
    )


@router.get(
    "/{run_id}/model", operation_id="get_model", response_model=Model, responses=errors(404, 409)
)
async def model(
    run_id: str,
    manager: Manager,
    store: Store,
    step: int | None = Query(
        None,
        ge=0,
        le=MAX_STEP,
        description="the weights as they were: the snapshot kept at the newest evaluation"
        " at or before this step (answered with `snapshot: true`; app/live/snapshots.py"
        " bounds how many a run keeps, thinned evenly over the run)",
    ),
) -> dict:
    """Architecture and parameters, with what they are; weights[i][j] connects input i to unit j.

    Without `step`: the weights now (a live run) or at the end; with it: a stored snapshot.
    """
    record = await asyncio.to_thread(store.get_run, run_id)
    run = manager.get(run_id)
    if step is not None:
        if record is None:
            raise not_found(run_id)
        snapshot = await asyncio.to_thread(store.read_snapshot, run_id, step)
        if snapshot is None:
            raise HTTPException(
                404, f"run {run_id!r} kept no weight snapshot at or before step {step}"
            )
        weights = finite(snapshot)
    elif run is not None:
        try:
            weights = finite(await asyncio.to_thread(run.handle.model))
        except ControlError as exc:
            raise HTTPException(409, str(exc)) from exc
    else:
        saved = store.read_events(run_id, types={"model"}) if record else None
        if saved is None:
            raise not_found(run_id)
        if not saved:
            raise HTTPException(404, f"run {run_id!r} ended without a saved model")
        weights = {k: v for k, v in saved[-1].items() if k != "type"}
    if record is None or is_outside(record):  # a script's own run: no RunConfig to describe it
        return weights
    description = RunConfig.model_validate(record["config"]).describe()
    return describe_model(weights, description, run_id)


@router.get(
    "/{run_id}/data", operation_id="get_data", response_model=RunData, responses=errors(404)
)
async def data(run_id: str, store: Store, tables: Tables) -> dict:
    """The train and test points with their targets, exactly as the network sees them."""
    record = store.get_run(run_id)
    if record is None:
        raise not_found(run_id)
    if is_outside(record):
        raise HTTPException(404, f"run {run_id!r} trained outside Backbeat: its data stayed there")
    config = RunConfig.model_validate(record["config"])
    table = None
    if config.table is not None:
        table = await asyncio.to_thread(tables.by_hash, config.table.hash)
        if table is None:
            raise HTTPException(404, f"run {run_id!r}: its dataset is no longer stored")
    ds = await asyncio.to_thread(config.make_data, table)
    out = {
        "features": config.input_features,
        "task": ds.spec.task,
        "n_classes": ds.spec.n_classes,
        "extent": ds.extent,
        "target_range": ds.target_range,
        "standardized": table is not None and table.standardized,
        "train": {"x": ds.x_train.tolist(), "y": ds.y_train.tolist()},
        "test": {"x": ds.x_test.tolist(), "y": ds.y_test.tolist()},
    }
    if ds.points_train is not None:
        out["train"]["points"] = ds.points_train.tolist()
        out["test"]["points"] = ds.points_test.tolist()
    return finite(out)


@router.get(
    "/{run_id}/metrics",
    operation_id="get_metrics",
    response_model=None,
    responses={200: {"model": Metrics, "content": CSV}, **errors(404)},
)
async def metrics(
    run_id: str,
    store: Store,
    every: int = Query(1, ge=1, le=1_000_000),
    format: Literal["json", "csv"] = "json",
    start: int = Query(0, ge=0, le=MAX_STEP),
    stop: int | None = Query(None, ge=1, le=MAX_STEP),
) -> dict | Response:
    """Every step's metrics (every N-th with `every`, steps in [start, stop)), as JSON or CSV.

    JSON also carries the run's cues (chime, alarm, overfit) so exports can sound them; the CSV
    adds each evaluation (train/test loss and accuracy, test entropy) and an `event` column.
    An outside run's own scalars come as `extra` (JSON) or `extra_<name>` columns (CSV), and the
    steps whose echoes were measured (the others hold the last measurement) as `measured`.
    """
    record = store.get_run(run_id)
    if record is None:
        raise not_found(run_id)
    block = await asyncio.to_thread(store.read_steps, run_id, every=every, start=start, stop=stop)
    if format == "json":
        kinds = {*CUE_EVENTS, *OUTSIDE_EVENTS}
        found = await asyncio.to_thread(store.read_events, run_id, types=kinds)
        events = [ev for ev in found if ev["type"] in CUE_EVENTS]
        body = {"id": run_id, "layers": record["layers"], **block_columns(block), "events": events}
        body.update(outside_columns(found, start, stop))  # outside runs: "extra", "measured"
        return Response(dumps(body), media_type="application/json")
    n_layers = len(record["layers"]) - 1
    kinds = {"eval", *EVENT_TYPES, *OUTSIDE_EVENTS}
    events = await asyncio.to_thread(store.read_events, run_id, types=kinds)
    return Response(
        metrics_csv(block, n_layers, events),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="backbeat-{run_id}.csv"'},
    )


@router.delete(
    "/{run_id}",
    status_code=204,
    dependencies=[Presenter],
    operation_id="delete_run",
    responses=errors(403, 404),
)
async def delete_run(run_id: str, manager: Manager, store: Store, tables: Tables) -> Response:
    """Forget a run and its history, stopping it first if it is live."""
    if store.get_run(run_id) is None and manager.get(run_id) is None:
        raise not_found(run_id)
    await manager.delete(run_id)
    await asyncio.to_thread(store.delete_run, run_id)
    await asyncio.to_thread(tables.collect)  # an uploaded set's rows, if nothing else uses them
    return Response(status_code=204)
