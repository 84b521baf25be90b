"""README screenshots: the page mid-run (1600×900) and presenter mode (1920×1080).

Starts its own server on a free port with a throwaway data folder, drives the system
Chromium with Playwright to a spiral run well underway, and writes
docs/screenshots/page.png and docs/screenshots/presenter.png. Run it with `make screenshots`.
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.web.devserver import NotYet, ServerProcess, wait_until  # noqa: E402

OUT = REPO / "docs" / "screenshots"
# A prepared run, as a presenter would bookmark it: spiral with sine features, three hidden layers.
BOOKMARK = (
    "#dataset=spiral&features=x1,x2,sin(x1),sin(x2)&hidden=8,8,6&optimizer=adam"
    "&learning_rate=0.03&batch_size=10&seed=3&max_steps=200000&stop_at_convergence=false&tempo=700"
)
WARM_UP_STEPS = 2000  # trained fast first (700 steps/s), so the boundary has taken shape
SHOW_TEMPO = 430  # tempo slider position (log scale): ~13 steps/s, pulses in flight
SETTLE = 3.0  # s at that tempo before the shot, so the charts and pulses are the slow ones
SET_RANGE = """(el, v) => {
  el.value = String(v);
  el.dispatchEvent(new Event('input', {bubbles: true}));
}"""


def chromium() -> str:
    path = os.environ.get("BACKBEAT_CHROMIUM") or shutil.which("chromium")
    if not path:
        raise SystemExit("screenshots: no Chromium; install Debian's `chromium` (make chromium)")
    return path


def step_of(page) -> int:
    return page.evaluate("window.backbeat ? window.backbeat.state.step : 0")


def shoot(url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.set_default_timeout(20_000)
        page.goto(f"{url}/{BOOKMARK}")
        page.get_by_test_id("dataset-spiral").wait_for()
        page.get_by_test_id("play").click()
        wait_until(lambda: step_of(page) >= WARM_UP_STEPS, 90, f"{WARM_UP_STEPS} steps")
        page.get_by_test_id("tempo").evaluate(SET_RANGE, SHOW_TEMPO)  # a tempo you can hear
        time.sleep(SETTLE)
        wait_until(page.get_by_test_id("banner").is_hidden, 15, "the banner to clear")
        page.screenshot(path=OUT / "page.png")
        print(f"wrote {OUT / 'page.png'} at step {step_of(page)}")

        # A second screen joins the same run late, enables sound and goes to presenter mode.
        stage = browser.new_page(viewport={"width": 1920, "height": 1080})
        stage.set_default_timeout(20_000)
        stage.goto(f"{url}/")
        stage.get_by_test_id("dataset-spiral").wait_for()
        joined = "window.backbeat && window.backbeat.state.runState === 'running'"
        wait_until(lambda: stage.evaluate(joined), 20, "the second screen to join the run")
        stage.get_by_role("button", name="Click to enable sound").click()
        stage.keyboard.press("p")
        wait_until(lambda: stage.evaluate("document.body.dataset.presenting") == "true", 10, "P")
        time.sleep(SETTLE)
        wait_until(stage.get_by_test_id("banner").is_hidden, 15, "the banner to clear")
        stage.screenshot(path=OUT / "presenter.png")
        print(f"wrote {OUT / 'presenter.png'} at step {step_of(stage)}")
        page.keyboard.press("r")  # stop the run
        browser.close()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="backbeat-shots-"))
    argv = [sys.executable, "-m", "uvicorn", "app.web.server:create_app", "--factory"]
    argv += ["--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]
    server = ServerProcess(argv, data, env={"BACKBEAT_DATA": str(data)}, cwd=REPO)
    try:
        with server:
            shoot(server.url)
    except NotYet as exc:
        raise SystemExit(f"screenshots: {exc}") from exc
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
