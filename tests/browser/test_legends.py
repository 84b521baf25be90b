"""What a student needs to read the pictures: the heatmap's colour key, the confusion matrix's
axes and counts, digit labels beside (not over) the digits, a deep net's gradient key and the
charts' hover readout."""

import re

import pytest

from browser.test_stage import finished_run

# Every text drawn on a canvas and every filled rectangle, by canvas id (css px, as drawn).
CANVAS_SPY = """(() => {
  const texts = (window.__texts = {});
  const rects = (window.__rects = {});
  const P = CanvasRenderingContext2D.prototype;
  const fillText = P.fillText;
  const fillRect = P.fillRect;
  P.fillText = function (t, x, y, ...rest) {
    (texts[this.canvas.id] ||= []).push([String(t), x, y, this.getTransform().a]);
    return fillText.call(this, t, x, y, ...rest);
  };
  P.fillRect = function (x, y, w, h) {
    if (this.canvas.id) (rects[this.canvas.id] ||= []).push([x, y, w, h]);
    return fillRect.call(this, x, y, w, h);
  };
})();"""


def test_the_heatmap_says_what_its_colours_mean(probe):
    probe.open("#dataset=circle")
    probe.wait(lambda: probe.text("heat-lo") == "orange: class 0", what="the class key")
    assert probe.text("heat-hi") == "blue: class 1"
    assert "unsure" in probe.text("heat-what")
    probe.open("#dataset=plane")  # regression: the value scale
    probe.wait(lambda: probe.text("heat-lo") == "-1", what="the regression scale")
    assert probe.text("heat-hi") == "1" and "predicted value" in probe.text("heat-what")
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.value("step-count") >= 5, what="the regression run")
    assert probe.text("heat-lo") == "-1" and probe.text("heat-hi") == "1"  # its data's range
    probe.open("#dataset=digits")
    assert probe.page.get_by_test_id("heat-legend").is_hidden()  # no map, no key
    assert probe.errors == []


def test_digits_confusion_has_axes_and_counts_and_labels_sit_below_the_digits(probe):
    probe.page.context.add_init_script(CANVAS_SPY)
    probe.open("#dataset=digits&tempo=max")
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.value("step-count") >= 200, timeout=30, what="the digits run")

    def drawn(canvas: str) -> list:
        return probe.page.evaluate(f"window.__texts[{canvas!r}] || []")

    def counts() -> list[int]:
        return [int(t) for t, *_ in drawn("confusion") if t.isdigit()]

    probe.wait(lambda: len(counts()) >= 120, what="the matrix drawn with its counts")
    texts = [t for t, *_ in drawn("confusion")]
    assert "predicted" in texts and "true" in texts
    probe.page.keyboard.press("Space")  # pause: one last matrix to read
    # the counts of the last paint: 10 column and 10 row numbers, then 100 cells of test rows
    cells = counts()[-100:]
    test_rows = probe.page.evaluate(
        "fetch('/api/runs/' + window.backbeat.state.runId + '/data').then(r => r.json())"
        ".then(d => d.test.y.length)"
    )
    assert sum(cells) == test_rows

    rects = probe.page.evaluate("window.__rects.digits || []")
    images = [r for r in rects if r[2] == r[3] and r[2] > 10]  # the 32 image squares
    labels = [(x, y) for t, x, y, _ in drawn("digits") if re.fullmatch(r"\d( ✗)?", t)]
    assert images and labels
    for x, y in labels:  # no label sits on an image
        assert not any(ix < x < ix + w and iy < y < iy + h for ix, iy, w, h in images), (x, y)
    assert probe.errors == []


def test_a_deep_nets_gradient_key_fits_and_hovering_reads_out_every_layer(probe):
    probe.open("#hidden=6,6,6,6,6,6&dataset=circle&tempo=max")
    key = probe.page.get_by_test_id("chart-grad").locator("xpath=..").locator(".chart-key")
    assert key.text_content() == "L1out" and key.locator("i").count() == 1  # L1 ▬▬ out
    assert "L1, L2, L3, L4, L5, L6, out" in key.get_attribute("title")
    assert key.evaluate("k => k.scrollWidth <= k.clientWidth")  # nothing cut off
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.value("step-count") >= 200, what="the run underway")
    probe.page.keyboard.press("Space")
    chart = probe.page.get_by_test_id("chart-grad").bounding_box()
    probe.page.mouse.move(chart["x"] + chart["width"] * 0.7, chart["y"] + chart["height"] * 0.5)

    def readout():
        return probe.page.evaluate("window.backbeat.pictures.readouts.grad")

    lines = probe.wait(readout, what="the hover readout")
    assert re.fullmatch(r"step [\d,.]+", lines[0])
    assert [line.split(":")[0] for line in lines[1:]] == [f"L{i}" for i in range(1, 7)] + ["out"]
    probe.page.mouse.move(chart["x"] + chart["width"] * 0.7, chart["y"] - 40)  # away: it goes
    probe.wait(lambda: readout() is None, what="the readout to clear")
    loss = probe.page.get_by_test_id("chart-loss").bounding_box()
    probe.page.mouse.move(loss["x"] + loss["width"] * 0.5, loss["y"] + loss["height"] * 0.5)
    lines = probe.wait(
        lambda: probe.page.evaluate("window.backbeat.pictures.readouts.loss"), what="loss hover"
    )
    assert [line.split(":")[0] for line in lines[1:]] == ["batch", "train", "test"]
    assert probe.errors == []


def test_hovering_the_heatmap_reads_out_the_point_and_the_prediction(probe, server):
    run = finished_run(server, dataset="circle", max_steps=3000, stop_at_convergence=False)
    probe.page.goto(f"{server.url}/?run={run['id']}")  # its last evaluation's map
    probe.page.get_by_test_id("dataset-spiral").wait_for()
    probe.wait(lambda: probe.state()["shownRun"] == run["id"], what="the stored run on stage")
    box = probe.page.get_by_test_id("heatmap").bounding_box()

    def readout_at(u: float, v: float) -> list[str]:
        probe.page.mouse.move(box["x"] + box["width"] * u, box["y"] + box["height"] * v)
        return probe.wait(
            lambda: (
                (r := probe.page.evaluate("window.backbeat.pictures.readouts.heatmap"))
                and len(r) == 2
                and r
            ),
            what="the heatmap readout",
        )

    centre, ring = readout_at(0.5, 0.5), readout_at(0.5, 0.12)  # (0, 0) and (0, 4.6)
    assert re.fullmatch(r"x₁ -?[\d.e-]+, x₂ -?[\d.e-]+", centre[0])
    assert re.fullmatch(r"x₁ -?0\.0\d+, x₂ 4\.\d+", ring[0])
    pattern = r"blue \(class 1\): (\d+)%"
    inside, outside = (int(re.fullmatch(pattern, r[1]).group(1)) for r in (centre, ring))
    assert inside > 50 > outside  # circle: blue disc inside an orange ring
    assert probe.errors == []


def test_hovering_the_network_reads_out_a_units_bias_and_an_edges_weight(probe, server):
    run = finished_run(
        server, dataset="xor", features=["x1", "x2"], hidden=[4], max_steps=300,
        stop_at_convergence=False,
    )  # fmt: skip
    model = server.http.get(f"/api/runs/{run['id']}/model").json()
    probe.page.goto(f"{server.url}/?run={run['id']}")
    probe.page.get_by_test_id("dataset-spiral").wait_for()
    pictures = "window.backbeat.pictures"
    probe.wait(lambda: probe.page.evaluate(pictures)["weights"], what="the final weights drawn")
    layout = probe.page.evaluate(pictures)["layout"]
    box = probe.page.get_by_test_id("network").bounding_box()

    def readout_at(x: float, y: float) -> list[str]:
        probe.page.mouse.move(box["x"] + x, box["y"] + y)
        return probe.wait(
            lambda: probe.page.evaluate(f"{pictures}.readouts.network"), what="the readout"
        )

    a, b = layout[0], layout[1]
    unit = readout_at(b["x"], b["ys"][1])
    assert unit[0] == "h1.2"
    assert float(unit[1].split()[1]) == pytest.approx(model["layers"][0]["biases"][1], rel=1e-2)
    # a quarter of the way along the edge x₁ → h1.3 (t = 1/4 of its curve)
    x = a["x"] + 0.296875 * (b["x"] - a["x"])
    y = a["ys"][0] + 0.15625 * (b["ys"][2] - a["ys"][0])
    edge = readout_at(x, y)
    assert edge[0] == "x₁ → h1.3"
    weight = model["layers"][0]["weights"][0][2]
    assert float(edge[1].split()[1]) == pytest.approx(weight, rel=1e-2, abs=1e-3)
    assert probe.errors == []
