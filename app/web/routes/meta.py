"""Health, the caller's session and the page's schema (datasets: routes/datasets.py)."""

from fastapi import APIRouter, Request

from app import __version__
from app.live import states
from app.web.routes.schemas import Health, Session
from app.web.security import offered_token

router = APIRouter(prefix="/api", tags=["meta"])


@router.get("/health", operation_id="health", response_model=Health)
def health(request: Request) -> dict:
    """Liveness, and how many websockets are open (operators watch it during a talk)."""
    limits = request.app.state.limits
    return {"status": "ok", "version": __version__, "connections": sum(limits.open.values())}


@router.get("/session", operation_id="session", response_model=Session)
def session(request: Request) -> dict:
    """The caller's role: presenters control runs, viewers watch (only when shared)."""
    access = request.app.state.access
    offered = offered_token(request.headers, request.cookies)
    return {"role": access.role(offered), "shared": access.shared}


@router.get("/schema", operation_id="ui_schema")
def schema() -> dict:
    """What the page must agree with the server on: the run states and their labels."""
    return {"states": states.schema()}
