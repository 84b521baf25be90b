"""One JSON error shape for every refusal, and the `responses=` entries that document it.

A route lists the refusals its own code raises: `@router.get(..., responses=errors(404, 409))`.
The framework's own refusals (400 and 413 for bodies, 422 for any input) are added to every
operation by `app.web.openapi`, so nobody has to remember them.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FieldError(BaseModel):
    """One wrong input: where it is, what is wrong, and the machine-readable kind."""

    model_config = ConfigDict(extra="allow")  # pydantic adds `input` and `ctx`

    loc: list[str | int] = Field(description='path to the input, e.g. ["body", "hidden", 0]')
    msg: str = Field(description="readable message")
    type: str = Field(description="error kind, e.g. `less_than_equal`")


class Error(BaseModel):
    """Every error answer: a readable sentence, or (422 only) the list of wrong fields."""

    detail: str | list[FieldError] = Field(
        description="a sentence; for 422, one entry per wrong field"
    )


# Why each status is sent; docs/protocol.md lists the same codes (a test compares them).
REASONS: dict[int, str] = {
    400: "the body could not be read (not UTF-8 text)",
    403: "viewers watch read-only: this needs the presenter token (shared servers only)",
    404: "no such run (or resource)",
    409: "the request makes no sense in the resource's current state",
    413: "the request body is over the server's limit (64 KiB by default)",
    421: "with --broker: another process serves this request; `detail` names it",
    422: "an input is invalid; `detail` lists each wrong field",
    429: "as many runs are training as the server allows at once",
}


def errors(*codes: int, reasons: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` entries for these statuses, each with the shared error model.

    `reasons` words a status for this route (e.g. `{409: "not an outside run"}`).
    """
    said = {**REASONS, **(reasons or {})}
    unknown = [c for c in codes if c not in said]
    if unknown:
        raise ValueError(f"add a reason for {unknown} to REASONS first")
    return {code: {"model": Error, "description": said[code]} for code in codes}
