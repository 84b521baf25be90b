"""The app factory: lifespan owns the store, the run manager and the store flusher."""

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app import __version__
from app.engine.config import form_schema
from app.live.handle import final_summary
from app.live.manager import RunManager
from app.live.states import RunState
from app.store import Store, StoreError, open_store
from app.store.tables import TableStore
from app.web import openapi, refusals
from app.web.assets import asset_dir
from app.web.routes import datasets, docs, ingest, meta, runs, scenes, stream
from app.web.security import (
    PRESENTER_COOKIE,
    PRESENTER_COOKIE_MAX_AGE,
    Access,
    ConnectionLimits,
    SecurityHeaders,
    offered_token,
)
from app.web.settings import Settings

log = logging.getLogger("backbeat")


HISTORY_NICE = 10  # how much less CPU priority the history writer's thread has (Linux)


def _lower_priority() -> None:
    """This thread (not the process: Linux nices threads one by one) yields the CPU.

    A flush compresses a second's steps (~14 ms of CPU for an unpaced run, most of it in
    zlib, which releases the GIL), and on a shared core the scheduler would split that time
    with the event loop's writes to viewers. At a lower priority it runs when the loop has
    nothing to do, and a viewer's frame does not wait for the history."""
    with contextlib.suppress(AttributeError, OSError):  # elsewhere: an ordinary thread
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HISTORY_NICE)


async def _flush_forever(app: FastAPI, interval: float) -> None:
    """Write buffered metrics to the store every `interval`, off the event loop, behind it."""
    failing = False  # a full disk is one line when it starts and one when it ends, not a flood
    loop = asyncio.get_running_loop()
    writer = ThreadPoolExecutor(1, "history", initializer=_lower_priority)
    try:
        while True:
            await asyncio.sleep(interval)
            try:
                app.state.manager.checkpoint()
                await loop.run_in_executor(writer, app.state.store.flush)
            except StoreError as exc:
                if not failing:
                    log.error("could not write run history (kept in memory, retrying): %s", exc)
                failing = True
            except Exception:
                log.exception("could not write run history")
            else:
                if failing:
                    log.warning("run history written again")
                failing = False
    finally:
        writer.shutdown(wait=False)


class Backbeat(FastAPI):
    """FastAPI with the security headers outermost (413s and 500s carry them), 413s in JSON."""

    def build_middleware_stack(self):
        return SecurityHeaders(refusals.JsonTooLarge(super().build_middleware_stack()))


def summarise_interrupted(store: Store, run_ids: list[str]) -> None:
    """Give runs cut off by a crash the summary their last stored evaluation allows."""
    for run_id in run_ids:
        evals = store.read_events(run_id, types={"eval"})
        record = store.get_run(run_id)
        state, reason = RunState.INTERRUPTED, "the server stopped"
        summary = final_summary(evals[-1] if evals else None, state, record["step"], reason)
        store.set_state(run_id, state, summary=summary)


async def manager_for(settings: Settings, store: Store) -> RunManager:
    """One process's runs; on a broker (README, "Scaling out"), every process's."""
    if not settings.broker:
        return RunManager(store, settings.max_concurrent_runs)
    from app.broker.link import Broker  # late: redis is only needed with --broker
    from app.broker.manager import BrokerManager

    manager = BrokerManager(
        store,
        settings.max_concurrent_runs,
        Broker(settings.broker),
        settings.train,
        address=f"{settings.host}:{settings.port}",
    )
    await manager.start()
    return manager


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings.data_dir, settings.store, max_runs=settings.max_stored_runs)
        if not settings.broker:  # on a broker other processes' live runs share the store
            interrupted = store.mark_interrupted()
            if interrupted:
                log.warning("marked %d run(s) cut off by a crash as interrupted", len(interrupted))
                summarise_interrupted(store, interrupted)
        store.prune()
        app.state.store = store
        app.state.tables = TableStore(store)
        app.state.tables.collect()  # rows of pruned runs' sets
        app.state.manager = await manager_for(settings, store)
        flusher = asyncio.create_task(_flush_forever(app, settings.store_flush_interval))
        try:
            yield
        finally:
            await app.state.manager.shutdown()
            flusher.cancel()
            try:
                store.close()  # writes what is buffered first
            except StoreError as exc:
                log.error("could not write the last run history: %s", exc)

    app = Backbeat(
        title="Backbeat",
        version=__version__,
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
        docs_url=None,  # served offline by routes/docs.py
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.access = Access(settings.presenter_token)
    app.state.limits = ConnectionLimits(
        settings.max_connections, settings.max_connections_per_address
    )

    refusals.install(app)

    app.include_router(meta.router)
    app.include_router(datasets.router)
    app.include_router(ingest.router)
    app.include_router(runs.router)
    app.include_router(scenes.router)
    app.include_router(stream.router)
    app.include_router(docs.router)
    openapi.install(app)
    app.mount("/static", StaticFiles(directory=asset_dir("static")), name="static")
    templates = Jinja2Templates(directory=asset_dir("templates"))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        link = request.query_params.get("token")
        access = app.state.access
        role = access.role(offered_token(request.headers, request.cookies, link))
        page = templates.TemplateResponse(
            request,
            "index.html",
            {
                "version": __version__,
                "role": role,
                "shared": access.shared,
                "schema": meta.schema(),
                "form": {**form_schema(), "datasets": datasets.builtin_catalogue()},
            },
        )
        if access.shared and link and role == "presenter":  # every tab of this browser presents
            page.set_cookie(
                PRESENTER_COOKIE,
                link,
                max_age=PRESENTER_COOKIE_MAX_AGE,
                httponly=True,
                samesite="strict",
                path="/",
            )
        return page

    return app
