"""Labels a student needs: the loss named, train and test accuracy as numbers."""

import re


def test_loss_is_named_and_accuracy_shown_as_numbers(probe):
    probe.open("#dataset=circle&tempo=40")
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.text("loss-name") == "loss: cross-entropy", what="the loss named")
    probe.wait(
        lambda: re.fullmatch(r"train \d{1,3}% · test \d{1,3}%", probe.text("accuracy-now")),
        what="train and test accuracy as numbers",
    )


def test_regression_names_squared_error_and_shows_no_accuracy(probe):
    probe.open("#dataset=plane&tempo=40")
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.value("step-count") >= 3, what="the regression run under way")
    probe.wait(lambda: probe.text("loss-name") == "loss: squared error", what="the loss named")
    assert probe.text("accuracy-now") == ""
