"""Dependencies shared by the routes: the manager and store that the lifespan owns."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.live.manager import RunManager
from app.store import RunStore
from app.web.security import offered_token


def get_manager(request: Request) -> RunManager:
    return request.app.state.manager


def get_store(request: Request) -> RunStore:
    return request.app.state.store


def require_presenter(request: Request) -> None:
    """Creating, controlling and deleting runs needs the presenter token when shared."""
    offered = offered_token(request.headers, request.cookies)
    if not request.app.state.access.is_presenter(offered):
        raise HTTPException(403, "viewers watch read-only: this needs the presenter link")


Manager = Annotated[RunManager, Depends(get_manager)]
Store = Annotated[RunStore, Depends(get_store)]
Presenter = Depends(require_presenter)


def not_found(run_id: str) -> HTTPException:
    return HTTPException(404, f"no run with id {run_id!r}")
