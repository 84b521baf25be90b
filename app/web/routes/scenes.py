"""Prepared scenes for a talk, and the defaults a newcomer's first run uses."""

from fastapi import APIRouter

from app.engine.config import RunConfig
from app.engine.scenes import SCENES

router = APIRouter(prefix="/api", tags=["scenes"])


@router.get("/scenes")
def scenes() -> list[dict]:
    """Each scene: its caption, the event it teaches, within how many steps, and its config."""
    return [s.describe() for s in SCENES.values()]


@router.get("/defaults")
def defaults() -> dict:
    """The run config of `POST /api/runs {}`; the page starts from exactly this."""
    return RunConfig().model_dump()
