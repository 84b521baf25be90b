"""Run config: Playground-like ranges, one clear field-level error per invalid field."""

import pytest
from pydantic import ValidationError

from app.engine.config import MAX_PARAMETERS, RunConfig, count_parameters

# field -> (invalid values, words the message must contain)
INVALID = {
    # any plain name may be an uploaded set (the server looks it up); these never can be
    "dataset": (["", "<b>spiral</b>", "a/b"], "unknown dataset"),
    "table": (["not a ref", 3], "valid dictionary"),
    "n_samples": ([9, 5001], "should be"),
    "noise": ([-0.01, 0.51], "should be"),
    "train_ratio": ([0.09, 0.91], "should be"),
    "features": ([["x3"], ["x1", "x1"], []], ""),
    "hidden": ([[0], [257], [8] * 9, [256] * 5], ""),
    "activation": (["swish", "ReLU"], "should be"),
    "optimizer": (["rmsprop"], "should be"),
    "learning_rate": ([0.0, 9e-6, 10.01, "fast"], ""),
    "batch_size": ([0, 513, 2.5], ""),
    "regularization": (["l3"], "should be"),
    "regularization_rate": ([-0.1, 10.5], "should be"),
    "seed": ([-1, 2**31], "should be"),
    "max_steps": ([0, 10_000_001], "should be"),
    "steps_per_second": ([0.0, 0.09, 10_001.0], "should be"),
    "start_paused": (["maybe"], "boolean"),
    "stop_at_convergence": (["maybe"], "boolean"),
}
CASES = [(field, value, words) for field, (values, words) in INVALID.items() for value in values]


def only_error(**fields) -> dict:
    with pytest.raises(ValidationError) as caught:
        RunConfig(**fields)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return errors[0]


def test_defaults_are_playground_like():
    config = RunConfig()
    assert (config.dataset, config.hidden, config.activation) == ("spiral", [8, 8], "tanh")
    assert (config.learning_rate, config.batch_size, config.steps_per_second) == (0.03, 10, 16.0)
    assert config.optimizer == "adam" and config.stop_at_convergence
    assert config.layers == [4, 8, 8, 1]  # x1, x2, sin x1, sin x2


@pytest.mark.parametrize(("field", "value", "words"), CASES)
def test_each_invalid_field_names_itself_with_a_readable_message(field, value, words):
    error = only_error(**{field: value})
    assert error["loc"] == (field,)
    message = error["msg"]
    assert words in message
    assert len(message) > 15 and "\n" not in message


def test_every_field_has_an_invalid_case():
    assert set(INVALID) == set(RunConfig.model_fields)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("learning_rate", 11, "less than or equal to 10"),
        ("learning_rate", 0.0, "greater than or equal to 0.00001"),
        ("batch_size", 513, "less than or equal to 512"),
        ("noise", 0.6, "less than or equal to 0.5"),
        ("train_ratio", 0.05, "greater than or equal to 0.1"),
        ("dataset", "mn/ist", "unknown dataset 'mn/ist'; choose from circle"),
        ("features", ["x1", "cos(x1)"], "unknown feature 'cos(x1)'"),
        ("features", ["x1", "x1"], "each feature may be chosen once"),
        ("hidden", [8] * 9, "at most 8 items"),
        ("hidden", [300], "1 to 256 units, got 300"),
        ("hidden", [0], "1 to 256 units, got 0"),
        ("activation", "swish", "'relu', 'tanh', 'sigmoid' or 'linear'"),
        ("optimizer", "rmsprop", "'sgd', 'momentum' or 'adam'"),
    ],
)
def test_messages_say_what_is_allowed(field, value, message):
    assert message in only_error(**{field: value})["msg"]


def test_parameter_cap_counts_the_whole_network():
    big = [256] * 4
    assert count_parameters([2, *big, 1]) <= MAX_PARAMETERS
    RunConfig(hidden=big)
    error = only_error(hidden=[256] * 5)
    assert error["loc"] == ("hidden",)
    assert f"exceed the limit of {MAX_PARAMETERS:,}" in error["msg"]
    # the cap depends on the inputs: 64 pixels make the same hidden layers too big
    assert count_parameters([64, *big, 10]) > MAX_PARAMETERS
    assert only_error(dataset="digits", hidden=big)["loc"] == ("hidden",)


def test_several_invalid_fields_give_one_error_each():
    with pytest.raises(ValidationError) as caught:
        RunConfig(learning_rate=100, batch_size=0, noise=2, dataset="no/pe", unknown=1)
    locs = sorted(e["loc"][0] for e in caught.value.errors())
    assert locs == ["batch_size", "dataset", "learning_rate", "noise", "unknown"]


def test_edges_of_every_range_are_accepted():
    RunConfig(
        learning_rate=1e-5, batch_size=1, noise=0.0, train_ratio=0.1, hidden=[], seed=0,
        max_steps=1, steps_per_second=0.1, n_samples=10, regularization_rate=0.0,
    )  # fmt: skip
    RunConfig(
        learning_rate=10, batch_size=512, noise=0.5, train_ratio=0.9, hidden=[1] * 8,
        seed=2**31 - 1, max_steps=10_000_000, steps_per_second=10_000, n_samples=5000,
        regularization_rate=10, features=["x1", "x2", "x1^2", "x2^2", "x1*x2", "sin(x1)"],
    )  # fmt: skip
    assert RunConfig(steps_per_second=None).steps_per_second is None  # unpaced


def test_digits_ignores_2d_features_for_its_layer_sizes():
    config = RunConfig(dataset="digits", hidden=[32], features=["x1"])
    assert config.layers == [64, 32, 10]
    assert config.input_features[:2] == ["px0", "px1"]
