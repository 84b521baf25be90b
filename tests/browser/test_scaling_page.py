"""The page on a web process with a broker: an outage under way when it joins shows at once."""

# ruff: noqa: F811 - the fixtures come from tests/_redis.py and tests/_scaling.py

from tests._redis import redis_server  # noqa: F401 - the fixture
from tests._scaling import Viewer, create, web  # noqa: F401 - web: a fixture
from tests.browser.conftest import new_probe


def test_a_page_that_joins_during_a_broker_outage_says_so(browser, web, redis_server, wait_until):
    a = web()
    run_id = create(a, steps_per_second=20, max_steps=1_000_000)
    viewer = Viewer(a, run_id, detail="audience")
    redis_server.stop()
    wait_until(lambda: viewer.of("notice"), 10, "the outage notice")  # before the page comes
    viewer.close()
    probe = new_probe(browser, a)
    try:
        probe.open()  # a presenter's page joins the live run: only its hello tells of the outage
        probe.wait(lambda: probe.state()["shownRun"] == run_id, what="the page on the run")
        probe.wait(lambda: probe.state()["connection"] == "limited", what="the outage shown")
        assert probe.text("connection") == "Connected (broker down)"
        redis_server.start()  # the live `up` notice brings it back
        probe.wait(lambda: probe.state()["connection"] == "connected", 20, "the broker back")
    finally:
        probe.page.context.close()
