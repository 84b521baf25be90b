"""`backbeat worker --broker redis://...`: train queued runs and publish them like an owner.

A worker reads jobs from `backbeat:jobs` in the `workers` consumer group (XREADGROUP, one
at a time, only while it has a free slot), claims the run in its record (only if no
other worker has and nobody cancelled it), acknowledges the job, and trains the run in a
child process (ProcessRun) whose messages go to the run's stream. A job read by a worker
that died before acknowledging it stays pending in the group: once it has been pending
JOB_IDLE s, the next worker with a free slot takes it over (XAUTOCLAIM) and handles it
as a new one; the claim in the run's record keeps a run from being trained twice. A
Redis that restarted empty has lost the group too: the worker creates it again and reads
on (the runs' homes queue again the jobs Redis lost, app/broker/manager.py). Its
heartbeat names it: if it dies, the web processes end its runs as `interrupted`. SIGTERM
or Ctrl+C ends its runs as `interrupted` too, and it exits once their ends are published.
"""

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from redis.exceptions import ResponseError

from app.broker import keys
from app.broker.codec import decode_table, end_entry
from app.broker.link import ERRORS, Broker
from app.broker.publisher import Publisher
from app.engine.config import RunConfig
from app.live.handle import end_event, final_summary
from app.live.handles import ProcessRun
from app.live.states import RunState

log = logging.getLogger("backbeat")

# tests only: exit right after reading a job, before claiming or acknowledging it
EXIT_AFTER_READ = "BACKBEAT_TEST_WORKER_EXIT_AFTER_READ"

# claim a run for this worker: only if no worker has it and it was not cancelled
CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'trainer') ~= '' then return 0 end
if redis.call('HEXISTS', KEYS[1], 'cancelled') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'trainer', ARGV[1])
return 1
"""


def no_group(exc: BaseException) -> bool:
    """Redis has no jobs group (it restarted empty): not a lost link."""
    return isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP")


class Worker:
    def __init__(self, url: str, max_runs: int) -> None:
        self.broker = Broker(url, role="worker")
        self.max_runs = max_runs
        self.runs: dict[str, tuple[ProcessRun, Publisher]] = {}
        self.stopping = asyncio.Event()

    def _owned(self, run_id: str):
        owned = self.runs.get(run_id)
        return None if owned is None else (owned[0], owned[1].flushed)

    def _relist(self) -> None:
        """Redis is back or lost our keys: each run's stream gets a `begin` before the rest."""
        for _, publisher in self.runs.values():
            if not publisher.done.is_set():
                publisher.listed_again()

    async def serve(self) -> None:
        self.broker.listeners.append(lambda up, detail: up and self._relist())
        self.broker.resets.append(self._relist)
        await self.broker.start(self._owned)
        await self._group()
        print(
            f"backbeat worker {self.broker.node}: training up to {self.max_runs} run(s) "
            f"from {self.broker.url}",
            flush=True,
        )
        while not self.stopping.is_set():
            self._forget_ended()
            if len(self.runs) >= self.max_runs or not self.broker.up:
                await asyncio.sleep(0.2)
                continue
            try:
                jobs = await self._next_jobs()
            except ERRORS as exc:
                if no_group(exc):
                    log.warning("the jobs group is gone (Redis restarted?); creating it again")
                    await self._group()
                    continue
                self.broker.failed(exc)
                await asyncio.sleep(0.2)
                continue
            if jobs and os.environ.get(EXIT_AFTER_READ):
                os._exit(3)  # a worker dying between reading and claiming (tests)
            for job_id, fields in jobs:
                try:
                    await self._take(job_id, fields)
                except ERRORS as exc:  # unacknowledged: pending, another worker reclaims it
                    self.broker.failed(exc)
        await self._halt_all()

    async def _next_jobs(self) -> list[tuple[bytes, dict]]:
        """A job left pending by a worker that died with it, else the next new one."""
        redis, node = self.broker.redis, self.broker.node
        idle = int(keys.JOB_IDLE * 1000)
        _, stale, *_ = await redis.xautoclaim(keys.JOBS, keys.JOBS_GROUP, node, idle, count=1)
        stale = [(job_id, fields) for job_id, fields in stale if fields]  # None: deleted
        if stale:
            log.warning("job %s: its worker never took it; taking it over", stale[0][0].decode())
            return stale
        got = await redis.xreadgroup(keys.JOBS_GROUP, node, {keys.JOBS: ">"}, count=1, block=1000)
        return [job for _, jobs in got or [] for job in jobs]

    async def _group(self) -> None:
        while True:
            await self.broker.ready()
            try:
                await self.broker.redis.xgroup_create(
                    keys.JOBS, keys.JOBS_GROUP, "0", mkstream=True
                )
                return
            except ResponseError as exc:
                if "BUSYGROUP" in str(exc):
                    return
                raise
            except ERRORS as exc:
                self.broker.failed(exc)
                await asyncio.sleep(0.2)

    async def _take(self, job_id: bytes, fields: dict) -> None:
        """Claim, start, then acknowledge: a claimed run is always trained or ended."""
        redis, run_id = self.broker.redis, fields[b"run"].decode()
        if await redis.eval(CLAIM, 1, keys.run(run_id), self.broker.node):
            await self._start(run_id, fields)
        try:
            await redis.xack(keys.JOBS, keys.JOBS_GROUP, job_id)
        except ERRORS as exc:  # Redis restarted since the read: the job went with it
            if not no_group(exc):
                raise
        await redis.xdel(keys.JOBS, job_id)

    async def _start(self, run_id: str, fields: dict) -> None:
        try:
            config = RunConfig.model_validate_json(fields[b"config"])
            handle = ProcessRun(run_id, config, decode_table(fields.get(b"table", b"")))
            publisher = Publisher(self.broker, run_id, handle, asyncio.get_running_loop())
            await asyncio.to_thread(handle.start, publisher)
        except Exception as exc:  # a job this worker cannot train ends, visibly, as failed
            log.exception("run %s: could not start", run_id)
            await self._failed(run_id, f"the worker could not start it: {exc}")
            return
        self.runs[run_id] = (handle, publisher)
        publisher.start()
        log.info("run %s: training", run_id)

    async def _failed(self, run_id: str, reason: str) -> None:
        state = RunState.FAILED
        end = end_event(state, 0, final_summary(None, state, 0, reason))
        pipe = self.broker.redis.pipeline(transaction=True)
        pipe.xadd(keys.stream(run_id), end_entry(end))
        pipe.srem(keys.LIVE, run_id)
        pipe.expire(keys.stream(run_id), keys.ENDED_TTL)
        await pipe.execute()

    def _forget_ended(self) -> None:
        for run_id, (_, publisher) in list(self.runs.items()):
            if publisher.done.is_set():
                del self.runs[run_id]

    async def _halt_all(self, timeout: float = 5.0) -> None:
        for handle, _ in self.runs.values():
            handle.halt(RunState.INTERRUPTED)
        await asyncio.to_thread(lambda: [h.join(timeout) for h, _ in self.runs.values()])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(p.done.wait() for _, p in self.runs.values()))
        await self.broker.close()


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="backbeat worker", description="Train queued Backbeat runs from a Redis broker."
    )
    p.add_argument("--broker", required=True, help="redis://HOST:PORT/DB")
    p.add_argument("--max-runs", type=int, default=2, help="runs trained at once (default 2)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.max_runs < 1:
        print("backbeat worker: --max-runs must be at least 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    async def run() -> None:
        worker = Worker(args.broker, args.max_runs)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stopping.set)
        await worker.serve()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
