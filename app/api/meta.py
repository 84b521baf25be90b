"""Health and the dataset catalogue."""

from fastapi import APIRouter, Request

from app import __version__
from app.config import DIGITS_INPUTS, RunConfig
from app.datasets import DATASETS, FEATURES

router = APIRouter(prefix="/api", tags=["meta"])


@router.get("/health")
def health(request: Request) -> dict:
    """Liveness, and how many websockets are open (operators watch it during a talk)."""
    limits = request.app.state.limits
    return {"status": "ok", "version": __version__, "connections": sum(limits.open.values())}


@router.get("/session")
def session(request: Request) -> dict:
    """The caller's role: presenters control runs, viewers watch (only when shared)."""
    access = request.app.state.access
    offered = request.headers.get("x-backbeat-token")
    return {"role": access.role(offered), "shared": access.shared}


@router.get("/datasets")
def datasets() -> list[dict]:
    """Every dataset with its task, input features and the parameters a run may set."""
    fields = RunConfig.model_fields

    def param(name: str) -> dict:
        bounds = {
            k: getattr(m, k) for m in fields[name].metadata for k in ("ge", "le") if hasattr(m, k)
        }
        return {"default": fields[name].default, "min": bounds.get("ge"), "max": bounds.get("le")}

    return [
        {
            "name": spec.name,
            "task": spec.task,
            "n_classes": spec.n_classes,
            "description": spec.description,
            "features": list(FEATURES) if spec.is_2d else [],
            "default_features": ["x1", "x2"] if spec.is_2d else [],
            "n_inputs": 2 if spec.is_2d else DIGITS_INPUTS,
            "params": {k: param(k) for k in ("n_samples", "noise", "train_ratio")},
        }
        for spec in DATASETS.values()
    ]
