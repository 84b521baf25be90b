"""/docs and /redoc work with no internet: every host but the app's is blocked in Chromium."""

from urllib.parse import urlsplit

import pytest

from browser.conftest import VIEWPORT


@pytest.fixture
def offline_page(browser, server):
    """A page whose every request to another host is aborted, and recorded."""
    context = browser.new_context(viewport=VIEWPORT)
    own = urlsplit(server.url).netloc
    blocked: list[str] = []

    def only_own_host(route):
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).netloc == own:
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", only_own_host)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.blocked, page.errors = blocked, errors
    try:
        yield page
    finally:
        context.close()


def test_swagger_ui_renders_every_route_offline(offline_page, server):
    page = offline_page
    page.goto(f"{server.url}/docs")
    page.locator(".swagger-ui .info .title").filter(has_text="Backbeat").wait_for()
    page.locator(".opblock-summary-path", has_text="/api/runs/{run_id}/metrics").first.wait_for()
    # it can call the API too: "Try it out" on /api/health answers from this server
    health = page.locator(".opblock", has=page.locator("[data-path='/api/health']")).first
    health.locator(".opblock-summary").click()
    health.get_by_role("button", name="Try it out").click()
    health.get_by_role("button", name="Execute").click()
    health.locator(".response .response-col_status", has_text="200").first.wait_for()
    page.wait_for_load_state("networkidle")
    assert page.blocked == [] and page.errors == []


def test_redoc_renders_offline_without_web_fonts(offline_page, server):
    page = offline_page
    page.goto(f"{server.url}/redoc")
    page.get_by_role("heading", name="Backbeat").first.wait_for()
    page.get_by_text("/api/runs/{run_id}/metrics").first.wait_for()
    page.wait_for_load_state("networkidle")
    assert page.blocked == [] and page.errors == []
    fonts = page.evaluate("[...document.fonts].map((f) => f.family)")
    assert not any("Montserrat" in f or "Roboto" in f for f in fonts)  # no web font is loaded


def test_docs_csp_allows_only_this_server(server):
    for path in ("/docs", "/redoc"):
        csp = server.http.get(path).headers["content-security-policy"]
        assert (
            "https:" not in csp
            and "http:" not in csp
            and "'unsafe-inline'" not in (csp.split("script-src")[1].split(";")[0])
        ), csp
