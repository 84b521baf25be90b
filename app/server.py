"""The app factory: lifespan owns the store, the run manager and the store flusher."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app import __version__
from app.api import meta, runs, stream
from app.manager import RunManager
from app.runner import SUMMARY_KEYS
from app.security import TOKEN_HEADER, Access, ConnectionLimits, SecurityHeaders
from app.settings import Settings
from app.store import RunStore, StoreError
from app.wire import clean

log = logging.getLogger("backbeat")
ROOT = Path(__file__).resolve().parent.parent


async def _flush_forever(app: FastAPI, interval: float) -> None:
    """Write buffered metrics to SQLite at least once a second, off the event loop."""
    failing = False  # a full disk is one line when it starts and one when it ends, not a flood
    while True:
        await asyncio.sleep(interval)
        try:
            app.state.manager.checkpoint()
            await asyncio.to_thread(app.state.store.flush)
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


class Backbeat(FastAPI):
    """FastAPI with the security headers outermost, so 413s and 500s carry them too."""

    def build_middleware_stack(self):
        return SecurityHeaders(super().build_middleware_stack())


def summarise_interrupted(store: RunStore, run_ids: list[str]) -> None:
    """Give runs cut off by a crash the summary their last stored evaluation allows."""
    for run_id in run_ids:
        evals = store.read_events(run_id, types={"eval"})
        record = store.get_run(run_id)
        summary = {k: evals[-1].get(k) for k in SUMMARY_KEYS} if evals else {}
        summary.update(state="interrupted", step=record["step"], reason="the server stopped")
        store.set_state(run_id, "interrupted", summary=summary)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = RunStore(settings.data_dir, max_runs=settings.max_stored_runs)
        interrupted = store.mark_interrupted()
        if interrupted:
            log.warning("marked %d run(s) cut off by a crash as interrupted", len(interrupted))
            summarise_interrupted(store, interrupted)
        store.prune()
        app.state.store = store
        app.state.manager = RunManager(store, settings.max_concurrent_runs, settings.isolation)
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
    )
    app.state.settings = settings
    app.state.access = Access(settings.presenter_token)
    app.state.limits = ConnectionLimits(
        settings.max_connections, settings.max_connections_per_address
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, but a NaN or Infinity the client sent is echoed back as null."""
        return JSONResponse({"detail": clean(jsonable_encoder(exc.errors()))}, 422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        """Log the traceback here; the client gets a plain sentence, never a stack."""
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error; the server log has the details"}, 500)

    app.include_router(meta.router)
    app.include_router(runs.router)
    app.include_router(stream.router)
    app.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")
    templates = Jinja2Templates(directory=ROOT / "templates")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        offered = request.query_params.get("token") or request.headers.get(TOKEN_HEADER)
        role = app.state.access.role(offered)
        return templates.TemplateResponse(
            request,
            "index.html",
            {"version": __version__, "role": role, "shared": app.state.access.shared},
        )

    return app
