"""The run history reaches every stored run: pages, dates and filters."""

import re

from app.web.devserver import wait_until

RUNS = 30  # more than one page (25)


def test_history_pages_dates_and_filters(more_probes, own_server):
    quick = {"steps_per_second": None, "max_steps": 3, "start_paused": False}
    made = []
    for i in range(RUNS):
        dataset = "moons" if i % 3 == 0 else "circle"
        made.append(own_server.http.post("/api/runs", json={**quick, "dataset": dataset}).json())
        wait_until(  # two at a time at most: wait for this one to finish
            lambda r=made[-1]: (
                own_server.http.get(f"/api/runs/{r['id']}").json()["state"] == "finished"
            ),
            what="the run to finish",
        )
    probe = more_probes(own_server)
    probe.open()
    page = probe.page
    page.get_by_test_id("open-history").click()
    rows = page.locator("#history-rows tr")
    probe.wait(lambda: rows.count() == 25, what="a first page of 25")
    assert probe.text("history-range") == f"1–25 of {RUNS} runs"
    assert page.get_by_test_id("history-newer").is_disabled()
    assert re.search(r"[A-Z][a-z]{2} \d{1,2}, \d{4}, \d\d:\d\d", rows.first.inner_text())  # a date

    page.get_by_test_id("history-older").click()
    probe.wait(lambda: rows.count() == RUNS - 25, what="the rest on page two")
    oldest = made[0]["id"]
    assert page.get_by_test_id(f"history-{oldest}").is_visible()  # the oldest is reachable
    assert page.get_by_test_id("history-older").is_disabled()

    page.get_by_test_id("history-dataset").select_option("moons")
    probe.wait(lambda: rows.count() == RUNS // 3, what="only the moons runs")
    assert all("moons" in t for t in rows.all_inner_texts())
    assert probe.text("history-range") == f"1–{RUNS // 3} of {RUNS // 3} runs"
    page.get_by_test_id("history-state").select_option("finished")
    assert rows.count() == RUNS // 3
    page.get_by_test_id("history-dataset").select_option("")
    probe.wait(lambda: rows.count() == 25, what="all datasets again")
    assert probe.exceptions == []
