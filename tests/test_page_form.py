"""The page's run form is built from RunConfig: its choices, defaults and limits are rendered by
the server, so the page copies none of them (app/engine/config.py form_schema)."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import get_args

from app.engine.config import CHOICE_LABELS, NUMBER_FIELDS, RunConfig, choices, form_schema


class Controls(HTMLParser):
    """Each select's options (value, label, selected) and each input's attributes, by id."""

    def __init__(self) -> None:
        super().__init__()
        self.selects: dict[str, list[list]] = {}
        self.inputs: dict[str, dict] = {}
        self.body: dict = {}
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "select":
            self._select = a.get("id")
            self.selects[self._select] = []
        elif tag == "option" and self._select:
            self.selects[self._select].append([a.get("value"), "", "selected" in a])
        elif tag == "input" and "id" in a:
            self.inputs[a["id"]] = a

    def handle_data(self, data):
        if self._select and self.selects[self._select] and not self.selects[self._select][-1][1]:
            self.selects[self._select][-1][1] = data.strip()

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def page(api) -> Controls:
    parser = Controls()
    parser.feed(api.client.get("/").text)
    return parser


def test_every_choice_field_is_labelled_exactly_as_runconfig_allows():
    for name, labels in CHOICE_LABELS.items():
        assert list(labels) == list(get_args(RunConfig.model_fields[name].annotation)), name


def test_the_page_offers_runconfigs_choices_with_its_default_selected(api):
    controls, defaults = page(api), RunConfig()
    for name in CHOICE_LABELS:
        shown = controls.selects[name]
        expected = [
            [c["value"], c["label"], c["value"] == getattr(defaults, name)] for c in choices(name)
        ]
        assert shown == expected, name


def test_the_page_starts_from_runconfigs_defaults_and_limits(api):
    inputs, defaults = page(api).inputs, RunConfig()
    limits = form_schema()["limits"]
    for field, control in (
        ("batch_size", "batch-size"),
        ("max_steps", "max-steps"),
        ("seed", "seed"),
    ):
        attrs = inputs[control]
        assert int(attrs["value"]) == getattr(defaults, field)
        assert (int(attrs["min"]), int(attrs["max"])) == (
            limits[field]["min"],
            limits[field]["max"],
        )
    assert int(inputs["train-ratio"]["value"]) == round(defaults.train_ratio * 100)
    assert int(inputs["noise"]["value"]) == round(defaults.noise * 100)
    assert int(inputs["n-samples"]["value"]) == defaults.n_samples


def test_the_page_carries_the_form_schema_and_the_builtin_datasets(api):
    carried = json.loads(page(api).body["data-form"])
    assert carried["defaults"] == api.client.get("/api/defaults").json()
    assert set(carried["limits"]) == set(NUMBER_FIELDS)
    builtin = [d for d in api.client.get("/api/datasets").json() if d["source"] == "builtin"]
    assert carried["datasets"] == builtin
    digits = next(d for d in builtin if d["name"] == "digits")
    assert carried["digits_inputs"] == digits["n_inputs"]


def number(expr: str) -> float:
    """A JS numeric literal or a power-of-two expression such as `2 ** 31 - 1`."""
    expr = expr.replace("_", "").strip()
    if m := re.fullmatch(r"(\d+) \*\* (\d+) - (\d+)", expr):
        base, power, minus = map(int, m.groups())
        return float(base**power - minus)
    return float(expr)


def test_the_page_validators_fallback_ranges_are_the_servers():
    """validate.js takes its ranges from the page; its node:test fallback must not drift."""
    source = (Path(__file__).parents[1] / "static/js/validate.js").read_text()
    pattern = r"(\w+): \{ name: '[^']+', min: ([^,]+), max: ([^,}]+)"
    found = {key: (number(lo), number(hi)) for key, lo, hi in re.findall(pattern, source)}
    limits = form_schema()["limits"]
    assert set(found) == set(limits)
    for key, (lo, hi) in found.items():
        assert (lo, hi) == (float(limits[key]["min"]), float(limits[key]["max"])), key
