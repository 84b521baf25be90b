"""The states a run passes through, written down once: the server and the page both read them."""

from enum import StrEnum


class RunState(StrEnum):
    """Where a run is; a member is its wire name, with a label for people and a live flag.

    Adding a state is one line here: the store, the routes and the page follow.
    """

    def __new__(cls, value: str, label: str, live: bool):
        member = str.__new__(cls, value)
        member._value_ = value
        member.label, member.live = label, live
        return member

    STARTING = "starting", "Starting", True
    RUNNING = "running", "Running", True
    PAUSED = "paused", "Paused", True
    FINISHED = "finished", "Finished", False
    CONVERGED = "converged", "Converged", False  # the chime ended it (stop_at_convergence)
    STOPPED = "stopped", "Stopped", False
    DIVERGED = "diverged", "Diverged", False
    FAILED = "failed", "Failed", False
    INTERRUPTED = "interrupted", "Interrupted", False

    @property
    def ended(self) -> bool:
        return not self.live


LIVE_STATES = frozenset(s for s in RunState if s.live)  # still training (or about to)
ENDED_STATES = frozenset(s for s in RunState if s.ended)  # will never produce another step


def schema() -> list[dict]:
    """Every state with its label and whether it is live, in order, for `/api/schema`."""
    return [{"name": s.value, "label": s.label, "live": s.live} for s in RunState]
