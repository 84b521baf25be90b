"""Recovering on Redis: jobs a dead worker read or Redis lost, and what a viewer learns of an
outage."""

# ruff: noqa: F811 - the fixtures come from tests/_redis.py and tests/_scaling.py

import asyncio

import numpy as np
import redis
import redis.asyncio as aioredis

from app.broker import keys
from app.broker.codec import decode_block
from app.broker.link import Broker
from app.broker.manager import REQUEUE_GRACE
from app.broker.publisher import BATCH, Publisher
from app.broker.worker import EXIT_AFTER_READ
from tests._redis import redis_server  # noqa: F401 - the fixture
from tests._scaling import (  # noqa: F401 - web and worker are fixtures
    Viewer,
    control,
    create,
    live_on,
    run_of,
    web,
    worker,
)


def pending(jobs: redis.Redis) -> dict:
    """The jobs group's pending entries: how many, and which consumers hold them."""
    summary = jobs.xpending(keys.JOBS, keys.JOBS_GROUP)
    holders = {c["name"].decode(): c["pending"] for c in summary["consumers"]}
    return {"count": summary["pending"], "holders": holders}


def test_a_job_read_by_a_worker_that_died_is_taken_over(web, worker, redis_server, wait_until):
    a = web("--train", "workers")
    run_id = create(a, steps_per_second=100, max_steps=1_000_000)
    doomed = worker(env={EXIT_AFTER_READ: "1"})  # dies right after XREADGROUP hands it the job
    assert doomed.proc.wait(60) == 3, doomed.output()
    jobs = redis.Redis.from_url(redis_server.url)
    held = pending(jobs)
    assert held["count"] == 1 and list(held["holders"].values()) == [1]  # read, never acked
    assert jobs.hget(keys.run(run_id), "trainer") == b""  # and never claimed
    assert run_of(a, run_id)["state"] == "starting"
    worker()  # once the job has been pending JOB_IDLE s, this one takes it over
    timeout = keys.JOB_IDLE + 30
    wait_until(lambda: run_of(a, run_id)["step"] > 20, timeout, "the second worker to train")
    assert run_of(a, run_id)["state"] == "running"
    trainer = jobs.hget(keys.run(run_id), "trainer").decode()
    assert trainer and trainer not in held["holders"]
    assert pending(jobs)["count"] == 0 and jobs.xlen(keys.JOBS) == 0  # acknowledged, deleted


def test_a_relisting_goes_before_the_backlog(redis_server):
    """Steps that keep coming must not hold back the run's relisting after Redis restarts.

    Until the run is back in `backbeat:live`, every other process serves it as a stored
    replay: its viewers get a hello and history but no frames (the old bug, issue 14).
    """

    async def scenario() -> list:
        broker = Broker(redis_server.url)
        record = {"config": b"{}", "created": "0", "home": broker.node, "trainer": broker.node}
        publisher = Publisher(broker, "r1", None, asyncio.get_running_loop(), record)
        broker.listeners.append(lambda up, detail: up and publisher.listed_again())
        await broker.start(lambda run_id: None)
        await broker.ready()
        publisher.start()
        client = aioredis.from_url(redis_server.url)
        while not await client.sismember(keys.LIVE, "r1"):
            await asyncio.sleep(0.01)
        redis_server.stop()  # the owner notices, then Redis comes back empty
        publisher.on_steps("r1", {"step": np.array([1])})
        while broker.up:
            await asyncio.sleep(0.01)
        for step in range(2, 3 * BATCH):  # more than one round trip's worth, waiting
            publisher.on_steps("r1", {"step": np.array([step])})
        redis_server.start()
        await client.connection_pool.disconnect()  # its connection died with the old server
        while await client.xlen(keys.stream("r1")) < 3 * BATCH:
            await asyncio.sleep(0.01)
        entries = await client.xrange(keys.stream("r1"), count=2)
        listed = await client.sismember(keys.LIVE, "r1")
        await client.aclose()
        publisher.task.cancel()
        await broker.close()
        return [entries, listed]

    (first, second), listed = asyncio.run(scenario())
    assert first[1][b"k"] == b"begin" and int(first[1][b"step"]) == 0  # nothing reached Redis
    assert second[1][b"k"] == b"steps" and decode_block(second[1][b"d"])["step"][0] == 1
    assert listed


def test_a_workers_run_is_listed_again_after_redis_restarts(web, worker, redis_server, wait_until):
    home = web("--train", "workers")
    worker("--max-runs", "1")
    run_id = create(home, steps_per_second=100, max_steps=1_000_000)
    wait_until(lambda: run_of(home, run_id)["step"] > 20, 30, "the worker to train")
    viewer = Viewer(home, run_id)
    redis_server.stop()
    wait_until(lambda: viewer.of("notice"), 10, "the outage notice")
    redis_server.start()  # empty: the home lists the run again, the worker streams on
    wait_until(lambda: [n for n in viewer.of("notice") if n["broker"] == "up"], 20, "reconnect")
    client = redis.Redis.from_url(redis_server.url)
    wait_until(lambda: client.sismember(keys.LIVE, run_id), 10, "the run listed again")
    assert client.hget(keys.run(run_id), "trainer")
    other = web("--train", "workers")
    late = live_on(other, run_id)
    wait_until(lambda: late.of("frame"), 10, "frames on a process that joined later")
    seen = len(viewer.of("frame"))
    wait_until(lambda: len(viewer.of("frame")) > seen, 10, "frames on the home still")
    r = control(other, run_id, "stop")  # reaches the worker, named by the record
    assert r.status_code == 200 and r.json()["state"] == "stopped", r.text
    assert wait_until(late.ended, 10, "the end on the other process")["state"] == "stopped"
    wait_until(lambda: run_of(home, run_id)["state"] == "stopped", 10, "the home's record")
    late.close()
    viewer.close()


def test_a_queued_job_redis_lost_is_queued_again_and_trained_once(
    web, worker, redis_server, wait_until
):
    """Redis restarts empty (no persistence) while a run waits for a worker: its home queues
    it again, once, and it trains; the run a worker was training is not queued again."""
    home = web("--train", "workers")
    worker("--max-runs", "1")
    busy = create(home, steps_per_second=100, max_steps=1_000_000)
    wait_until(lambda: run_of(home, busy)["step"] > 20, 30, "the worker to train")
    waiting = create(home, steps_per_second=100, max_steps=1_000_000)  # no free worker
    jobs = redis.Redis.from_url(redis_server.url)
    assert [f[b"run"].decode() for _, f in jobs.xrange(keys.JOBS)] == [waiting]
    viewer = Viewer(home, waiting)
    assert viewer.hello["run"]["state"] == "starting"
    redis_server.stop()
    wait_until(lambda: viewer.of("notice"), 10, "the outage notice")
    redis_server.start()  # empty: the job, its record and the jobs group are gone
    jobs = redis.Redis.from_url(redis_server.url)
    wait_until(lambda: jobs.exists(keys.stream(busy)), 20, "the worker streaming on")
    assert jobs.xlen(keys.JOBS) == 0 and run_of(home, waiting)["state"] == "starting"
    queued = wait_until(lambda: jobs.xrange(keys.JOBS), REQUEUE_GRACE + 20, "the job again")
    assert [f[b"run"].decode() for _, f in queued] == [waiting]  # once, and not the busy run
    assert jobs.hget(keys.run(waiting), "trainer") == b""
    assert jobs.sismember(keys.LIVE, waiting)
    assert run_of(home, waiting)["state"] == "starting"
    r = control(home, busy, "stop")  # frees the worker: it takes the job queued again
    assert r.status_code == 200 and r.json()["state"] == "stopped", r.text
    wait_until(lambda: run_of(home, waiting)["step"] > 20, 30, "the queued run to train")
    wait_until(lambda: viewer.of("frame"), 10, "frames for its viewer")
    trainer = jobs.hget(keys.run(waiting), "trainer")
    begins = [f[b"n"] for _, f in jobs.xrange(keys.stream(waiting)) if f[b"k"] == b"begin"]
    assert begins == [trainer]  # one worker began it, once
    assert jobs.xlen(keys.JOBS) == 0  # taken, acknowledged and deleted
    assert jobs.xinfo_groups(keys.JOBS)[0]["name"] == keys.JOBS_GROUP.encode()  # made again
    assert control(home, waiting, "stop").json()["state"] == "stopped"
    viewer.close()
