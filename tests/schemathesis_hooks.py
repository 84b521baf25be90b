"""Schemathesis hooks for the contract run: rules the schema can only state in words.

Some rules tie fields together, which JSON Schema cannot express: RunConfig's parameter
cap (dataset, features and every hidden layer at once), an outside run's `sizes` having
one entry more than `layers`, a step batch's columns being as long as `step`. The models
check them in validators (pydantic reports `value_error`, or a step batch's own types in
`BATCH_RULES`) and say them in descriptions. A schema-valid body refused with 422 for such
rules alone is documented behaviour, not a finding (ST202); every other failure is kept,
including a 422 for any schema keyword.
An uploaded dataset's cells are checked the same way (a table needs an input and a target,
numbers, two classes...): its 422 is one sentence naming the row or column.

A positive step batch is made to keep the batch rules before it is sent (steps sorted and
unique, every column cut or padded to as many entries as `step`), and three positive
uploads in four (JSON or CSV) get rows that make a table (a header, numbers, two classes)
and a name a set may have, so the fuzzer reaches ingest and the table store rather than
only their content checks, and `validation_mismatch` can fail the run.
"""

import re
from zlib import crc32

import schemathesis
from schemathesis.core.parameters import ParameterLocation

from app.engine.datasets import DATASETS
from app.engine.tables import NAME_PATTERN
from app.live.ingest import BATCH_RULES, COLUMNS, LAYER_COLUMNS, MAX_NAME

CROSS_FIELD = {"value_error", *BATCH_RULES}  # pydantic's name for a model's own check, and ours
STEPS = ("POST", "/api/runs/{run_id}/steps")
UPLOAD = ("POST", "/api/datasets")
FILL = {"t": 0.0, "epoch": 0, **dict.fromkeys(LAYER_COLUMNS, [])}  # a valid entry; else null


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keep a failure unless it is ST202 for cross-field rules and nothing else."""
    if failure.code != "ST202" or response.status_code != 422:
        return True
    try:
        errors = response.json()["detail"]
        if case.operation.path == "/api/datasets" and isinstance(errors, str):
            return False  # the table's content checks, documented in the route's 422
        only_rules = bool(errors) and all(error["type"] in CROSS_FIELD for error in errors)
    except (ValueError, KeyError, TypeError):
        return True
    return not only_rules


def aligned(body: dict) -> dict:
    """The batch with unique increasing steps and every column as long as `step`."""
    steps = sorted(set(body["step"])) if isinstance(body.get("step"), list) else []
    body = {**body, "step": steps}
    for name in (*COLUMNS, *LAYER_COLUMNS):
        column = body.get(name)
        if isinstance(column, list):
            filler = column[-1] if column else FILL.get(name)
            body[name] = (column + [filler] * len(steps))[: len(steps)]
    if "loss" not in body:
        body["loss"] = [None] * len(steps)
    if isinstance(body.get("extra"), dict):
        body["extra"] = aligned_extra(body["extra"])
    return body


def aligned_extra(extra: dict) -> dict:
    """Extra scalars with steps in order and each name's values as long as its steps."""
    steps = sorted(extra["step"]) if isinstance(extra.get("step"), list) else []
    values = extra.get("values") if isinstance(extra.get("values"), dict) else {}
    fitted = {
        name[:MAX_NAME] or "x": (column + [None] * len(steps))[: len(steps)]
        for name, column in values.items()
        if isinstance(column, list)
    }
    return {**extra, "step": steps, "values": fitted}


def usable_rows(body: dict, multipart: bool) -> dict:
    """The upload with rows a table is made of (two numeric inputs, two classes) and a name
    it may be saved under; the drawn name and task stay when they are usable."""
    drawn = body.get("rows", [])
    numbers = [v for row in drawn if isinstance(row, list) for v in row]
    numbers = [float(v) for v in numbers if isinstance(v, int | float) and abs(v) < 1e6]
    numbers = numbers or [0.5]
    rows = [["x1", "x2", "label"]]
    rows += [[numbers[i % len(numbers)] + i, -i, i % 2] for i in range(6)]
    usable = {"task": body["task"]} if body.get("task") in ("classification", "regression") else {}
    name = body.get("name")
    if (
        isinstance(name, str)
        and re.match(NAME_PATTERN, name.strip())
        and name.lower() not in DATASETS
    ):
        usable["name"] = name
    if multipart:
        return usable | {"file": "\n".join(",".join(map(str, row)) for row in rows)}
    return usable | {"rows": rows}


@schemathesis.hook
def map_case(context, case):
    """Positive step batches keep the rules between columns, three positive uploads in four
    get usable rows; negative cases stay as drawn."""
    operation = case.operation
    positive = case.meta is None or not case.meta.is_negative_at(ParameterLocation.BODY)
    if not positive or not isinstance(case.body, dict):
        return case
    where = (operation.method.upper(), operation.path)
    if where == STEPS:
        case.body = aligned(case.body)
    elif where == UPLOAD and crc32(repr(case.body).encode()) % 4:  # a quarter stay as drawn
        case.body = usable_rows(case.body, case.media_type == "multipart/form-data")
    return case
