"""The top bar keeps every control on screen at the widths projectors and laptops have."""

import pytest

from browser.conftest import new_probe

WIDTHS = (1280, 1440, 1600, 1920)
# each control's right edge and the bar's overflow; hidden ones (a viewer's, a closed menu's) skip
MEASURE = """() => {
  const bar = document.querySelector('.topbar');
  const all = [...bar.querySelectorAll('button, summary, a')];
  const shown = all.filter((e) => e.getClientRects().length);
  return {
    overflow: bar.scrollWidth - bar.clientWidth,
    offscreen: shown
      .filter((e) => e.getBoundingClientRect().right > innerWidth)
      .map((e) => e.id || e.textContent.trim()),
    controls: shown.length,
  };
}"""


@pytest.mark.parametrize("width", WIDTHS)
def test_every_top_bar_control_is_on_screen(browser, server, width):
    probe = new_probe(browser, server, viewport={"width": width, "height": 800})
    try:
        probe.open()
        got = probe.page.evaluate(MEASURE)
        assert got["controls"] >= 9  # reset, play, step, max, mute, scenes, history, sound, …
        assert got["offscreen"] == [] and got["overflow"] <= 0, got
    finally:
        probe.page.context.close()
