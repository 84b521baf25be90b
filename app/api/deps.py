"""Dependencies shared by the routes: the manager and store that the lifespan owns."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.manager import RunManager
from app.security import TOKEN_HEADER
from app.store import RunStore


def get_manager(request: Request) -> RunManager:
    return request.app.state.manager


def get_store(request: Request) -> RunStore:
    return request.app.state.store


def require_presenter(request: Request) -> None:
    """Creating, controlling and deleting runs needs the presenter token when shared."""
    if not request.app.state.access.is_presenter(request.headers.get(TOKEN_HEADER)):
        raise HTTPException(403, "viewers watch read-only: this needs the presenter link")


Manager = Annotated[RunManager, Depends(get_manager)]
Store = Annotated[RunStore, Depends(get_store)]
Presenter = Depends(require_presenter)


def not_found(run_id: str) -> HTTPException:
    return HTTPException(404, f"no run with id {run_id!r}")
