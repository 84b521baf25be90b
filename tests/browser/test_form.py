"""The run form: limits checked as typed, in plain words; bookmarks repaired; controls reachable."""

from urllib.parse import parse_qsl

import pytest

from browser.conftest import new_probe

NO_FEATURES = "Choose at least one input feature: the network needs something to look at"
MEETS = "(a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom"
OVERLAP = f"""(els) => {{
  const meets = {MEETS};
  const boxes = els.map((e) => e.getBoundingClientRect());
  const hits = [];
  boxes.forEach((a, i) => boxes.forEach((b, j) => j > i && meets(a, b) && hits.push([i, j])));
  return hits;
}}"""
UNDER_GATE = f"""(els) => {{
  const meets = {MEETS};
  const gate = document.getElementById('enable-sound').getBoundingClientRect();
  return els.filter((e) => e.offsetParent && meets(e.getBoundingClientRect(), gate))
    .map((e) => e.id || e.dataset.testid);
}}"""


def bookmark(probe) -> dict:
    return dict(parse_qsl(probe.page.evaluate("location.hash.slice(1)"), keep_blank_values=True))


def test_limits_are_checked_as_typed_in_plain_words_and_never_reach_the_url(probe, server):
    probe.open("#batch_size=10")
    page = probe.page
    field, error = page.get_by_test_id("batch-size"), page.get_by_test_id("error-batch_size")
    field.fill("600")  # no Play, no Tab: the message comes as the user types
    probe.wait(lambda: error.inner_text() == "Batch size must be between 1 and 512", what="range")
    assert field.get_attribute("aria-invalid") == "true"
    field.press("Tab")
    assert bookmark(probe)["batch_size"] == "10"  # the invalid value never enters the URL
    field.fill("2.5")
    probe.wait(lambda: error.inner_text() == "Batch size must be a whole number", what="whole")
    runs_before = len(server.http.get("/api/runs").json())
    page.get_by_test_id("play").click()
    assert probe.text("status").lower() == "ready"
    assert len(server.http.get("/api/runs").json()) == runs_before  # Play waits for a fix
    assert "Value error" not in page.content() and "should" not in error.inner_text()
    field.fill("32")
    field.press("Tab")
    probe.wait(lambda: error.inner_text() == "", what="the message to go once fixed")
    assert field.get_attribute("aria-invalid") is None
    probe.wait(lambda: bookmark(probe)["batch_size"] == "32", what="the valid value in the URL")


def test_a_bookmark_outside_the_limits_is_repaired_with_a_notice(probe):
    probe.open("#hidden=4,4,4,4,4,4,4,4,4&learning_rate=50&batch_size=0&features=")
    page = probe.page
    notice = probe.text("form-notice")
    assert "9 hidden layers" in notice and "Learning rate 50" in notice and "Batch size 0" in notice
    assert probe.text("layer-count") == "8 hidden layers"
    assert (
        page.get_by_test_id("units-8").is_visible() and page.get_by_test_id("units-9").count() == 0
    )
    saved = bookmark(probe)
    assert saved["hidden"] == ",".join(["4"] * 8)
    defaults = ",".join(probe.server.http.get("/api/defaults").json()["features"])
    assert (saved["learning_rate"], saved["batch_size"], saved["features"]) == ("10", "1", defaults)
    page.get_by_test_id("play").click()
    probe.wait(lambda: probe.text("status").lower() == "running", what="the repaired run to play")
    assert probe.exceptions == [] and probe.text("error-run") == ""


def test_the_last_input_feature_cannot_be_deselected(probe):
    probe.open("#features=x1,x2")
    page = probe.page
    page.get_by_test_id("feature-x2").click()
    page.get_by_test_id("feature-x1").click()  # would leave none
    assert page.get_by_test_id("feature-x1").get_attribute("aria-pressed") == "true"
    assert probe.text("error-features") == NO_FEATURES
    assert bookmark(probe)["features"] == "x1"


def test_the_regularization_rate_follows_the_regularizer(probe):
    probe.open("#regularization=none&regularization_rate=0")
    page = probe.page
    rate = page.get_by_test_id("reg-rate")
    assert rate.is_disabled()  # no rate without a regularizer
    page.get_by_test_id("regularization").select_option("l2")
    probe.wait(lambda: rate.is_enabled(), what="the rate to become choosable")
    assert float(rate.input_value()) > 0 and bookmark(probe)["regularization_rate"] == "0.003"
    page.get_by_test_id("regularization").select_option("none")
    probe.wait(lambda: rate.is_disabled(), what="the rate to grey out again")
    assert bookmark(probe)["regularization_rate"] == "0"


def test_layer_buttons_never_overlap_and_each_hits_its_own_layer(probe):
    probe.open("#hidden=" + ",".join(["4"] * 8))
    page = probe.page
    buttons = page.locator("#layer-editor button")
    assert buttons.count() == 16
    assert buttons.evaluate_all(OVERLAP) == []
    page.get_by_test_id("add-neuron-5").click()
    page.get_by_test_id("remove-neuron-6").click()
    units = [page.get_by_test_id(f"units-{i}").inner_text() for i in range(1, 9)]
    assert units == ["4", "4", "4", "4", "5", "3", "4", "4"]


@pytest.mark.parametrize("width", [1600, 1920])
def test_the_sound_prompt_covers_no_control(browser, server, width):
    probe = new_probe(browser, server, viewport={"width": width, "height": 900})
    try:
        probe.open()
        page = probe.page
        gate = page.get_by_role("button", name="Click to enable sound")
        assert gate.is_visible()
        controls = page.locator(".panel :is(select, input, button), .hyper-row :is(select, input)")
        assert controls.evaluate_all(UNDER_GATE) == []
        for testid in ("optimizer", "regularization"):
            page.get_by_test_id(testid).click(trial=True, timeout=5_000)  # nothing on top of it
    finally:
        probe.page.context.close()
