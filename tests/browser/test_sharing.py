"""Sharing with a room: the presenter keeps control in every tab; viewers never see the token."""

from browser.conftest import PRESENTER_TOKEN


def test_presenter_role_holds_across_tabs_and_the_token_stays_hidden(more_probes, shared_server):
    presenter = more_probes(shared_server)
    presenter.open(f"?token={PRESENTER_TOKEN}")
    context = presenter.page.context
    cookie = next(c for c in context.cookies() if c["name"] == "backbeat_presenter")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    second_tab = context.new_page()  # same browser, no token in the address
    second_tab.goto(f"{shared_server.url}/")
    second_tab.get_by_test_id("dataset-spiral").wait_for()
    assert second_tab.evaluate("document.body.dataset.role") == "presenter"
    assert second_tab.get_by_test_id("role").count() == 0  # no "Watching" badge
    assert not second_tab.get_by_test_id("play").is_disabled()
    assert PRESENTER_TOKEN not in second_tab.evaluate("document.cookie")  # HttpOnly
    second_tab.get_by_test_id("play").click()  # it controls runs, through the cookie alone
    runs = presenter.wait(
        lambda: [r for r in shared_server.http.get("/api/runs").json() if r["state"] == "running"],
        what="a run started from the second tab",
    )
    assert len(runs) == 1

    viewer = more_probes(shared_server)  # another browser in the room
    viewer.open()
    page = viewer.page
    assert page.get_by_test_id("role").text_content() == "Watching"
    assert page.get_by_test_id("play").is_disabled()
    assert viewer.page.context.cookies() == []
    html = page.content()
    storage = page.evaluate("JSON.stringify({...sessionStorage, ...localStorage})")
    assert PRESENTER_TOKEN not in html and PRESENTER_TOKEN not in storage
    assert not any(PRESENTER_TOKEN in url for url in viewer.requests)
