"""One RunState and one run-handle contract, shared by the server, the store and the page."""

import html
import json
import re

import pytest

from app.engine.config import RunConfig
from app.live.handle import CONTROLS, ControlError, RunHandle, control, end_event
from app.live.handles import ProcessRun
from app.live.states import ENDED_STATES, LIVE_STATES, RunState


def test_every_state_is_either_live_or_ended():
    assert set(RunState) == LIVE_STATES | ENDED_STATES
    assert not LIVE_STATES & ENDED_STATES
    assert {s.value for s in LIVE_STATES} == {"starting", "running", "paused"}
    assert all(isinstance(s.label, str) and s.label for s in RunState)


def test_the_page_and_the_api_get_the_same_states(api):
    served = api.client.get("/api/schema").json()["states"]
    assert [s["name"] for s in served] == [s.value for s in RunState]
    assert {s["name"] for s in served if s["live"]} == {s.value for s in LIVE_STATES}
    assert {s["name"]: s["label"] for s in served}["diverged"] == RunState.DIVERGED.label
    page = api.client.get("/").text
    embedded = re.search(r"data-schema='(.*?)'", page)
    assert embedded and json.loads(html.unescape(embedded.group(1)))["states"] == served


def test_the_child_process_handle_fulfils_the_contract():
    handle = ProcessRun("r", RunConfig(start_paused=True))  # not started: no process yet
    assert isinstance(handle, RunHandle)
    assert handle.state is RunState.PAUSED and handle.alive
    assert handle.controls <= CONTROLS


class OnlyStops:
    """A producer that can do nothing but stop (as an external script might)."""

    controls = frozenset({"stop"})
    stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_control_names_the_action_a_producer_cannot_honour():
    handle = OnlyStops()
    with pytest.raises(ControlError, match="cannot pause: this run does not support it"):
        control(handle, "pause")
    with pytest.raises(ControlError, match="unknown action 'rewind'"):
        control(handle, "rewind")
    control(handle, "stop")
    assert handle.stopped


def test_end_events_carry_plain_state_names():
    event = end_event(RunState.FINISHED, 12, {"state": "finished"})
    summary = {"state": "finished"}
    assert event == {"type": "end", "state": "finished", "step": 12, "summary": summary}
    assert type(event["state"]) is str  # pickled to the server and compared as text
