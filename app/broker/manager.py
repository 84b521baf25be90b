"""The run manager of a web process on a broker: its own runs published, others' watched.

- A run created here trains here (`--train here`, a ProcessRun whose messages also go
  to the run's stream) or is queued for a `backbeat worker` (`--train workers`: a
  RemoteRun that this process, the run's home, records into the store).
- A run a user's script streams in here (ExternalRun, /ws/ingest or POST .../steps) is
  published like a run trained here: this process is its trainer, the script must keep
  sending to it, and pause or stop sent through any process reach the script's run.
  Steps sent to another process are refused there (421, or close 4021) with the home's
  node id and address (`fed_elsewhere`): they are not forwarded.
- A run live elsewhere (in `backbeat:live`) is attached the first time it is asked for:
  a RemoteRun feeds a local channel that fans out to this process's viewers.
- Every second the reaper ends runs whose trainer or home has stopped beating
  (`interrupted`), and runs the store calls live that no process lists any more.
- A queued run whose job Redis lost (a restart without persistence) is queued again by
  its home, once: see `_requeue_lost`.
- Broker up or down, every live channel tells its viewers with a `notice` message; a
  viewer that joins while the broker is down finds that notice in its hello.
"""

import asyncio
import contextlib
import logging
import threading
import time

from app.broker import keys
from app.broker.codec import encode_table, end_entry, pack, unpack
from app.broker.link import BACKOFF_MAX, ERRORS, Broker
from app.broker.publisher import Publisher, Tee
from app.broker.remote import CATCH_UP_TIMEOUT, RemoteRun
from app.engine.config import RunConfig
from app.engine.tables import Table
from app.live.channel import DISCRETE_EVENTS
from app.live.external import ExternalRun, OutsideShape
from app.live.handle import CONTROLS, RunHandle, Sink, batched, end_event, final_summary
from app.live.manager import LiveRun, RunManager, TooManyRuns
from app.live.replay import seed_earlier
from app.live.states import LIVE_STATES, RunState
from app.store import RunStore

log = logging.getLogger("backbeat")

REFRESH_INTERVAL = 0.25  # s between looks at which runs are live elsewhere
REAP_INTERVAL = 1.0  # s between looks for runs whose process died
STARTUP_WAIT = 2.0  # s a viewer of a process that has not reached Redis yet may wait
ORPHAN_AGE = 10.0  # s a run the store calls live may go unlisted and unrecorded
# s a queued run's record may be missing from Redis before its home queues it again: by
# then a worker that claimed it just before Redis restarted has reconnected (its backoff)
# and begun the run's stream, and every process has beaten since (as the reaper's settle)
REQUEUE_GRACE = keys.BEAT_TTL + keys.BEAT_INTERVAL + 1.25 * BACKOFF_MAX

# queue a run again only if Redis holds nothing of it: no record (written with its job, in
# one transaction, so both went) and no stream (which a worker that took it writes first)
REQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], '*', 'run', ARGV[1], 'config', ARGV[2], 'table', ARGV[3])
return 1
"""


def interrupt(store: RunStore, run_id: str, reason: str) -> dict | None:
    """End a stored live run as interrupted, with the summary its evaluations allow."""
    record = store.get_run(run_id)
    if record is None or record["state"] not in LIVE_STATES:
        return None
    evals = store.read_events(run_id, types={"eval"})
    state = RunState.INTERRUPTED
    summary = final_summary(evals[-1] if evals else None, state, record["step"], reason)
    store.set_state(run_id, state, summary=summary)
    return end_event(state, record["step"], summary)


class Follow:
    """A run's sink that keeps its live config current, whichever process turned a knob."""

    def __init__(self, run: LiveRun, sink: Sink) -> None:
        self.run, self.sink = run, sink

    def batch(self) -> contextlib.AbstractContextManager:
        return batched(self.sink)

    def on_steps(self, run_id: str, block) -> None:
        self.sink.on_steps(run_id, block)

    def on_event(self, run_id: str, event: dict) -> None:
        if event["type"] == "change":  # a knob turned through another process
            config = {**self.run.config.model_dump(), **event["changes"]}
            self.run.config = RunConfig.model_validate(config)
        self.sink.on_event(run_id, event)


def shape_of(config: dict) -> tuple[RunConfig | OutsideShape, frozenset[str]]:
    """A run's config from its record, and the controls its producer honours."""
    if config.get("source") == "external":  # a user's script streams it in (ingest)
        return OutsideShape.from_dump(config), ExternalRun.controls
    return RunConfig.model_validate(config), CONTROLS


def decode_record(raw: dict) -> dict:
    record = {k.decode(): v.decode() for k, v in raw.items()}
    record["config"] = unpack(record["config"])
    record["created"] = float(record["created"])
    return record


class BrokerManager(RunManager):
    def __init__(
        self,
        store: RunStore,
        max_concurrent: int,
        broker: Broker,
        train: str = "here",
        address: str = "",
    ) -> None:
        super().__init__(store, max_concurrent)
        self.broker, self.train = broker, train
        self.address = address  # HOST:PORT this process is bound to, for other processes' errors
        self.loop: asyncio.AbstractEventLoop | None = None
        self.publishers: dict[str, Publisher] = {}
        self.watched: set[str] = set()  # runs attached from elsewhere (not ours to record)
        self.elsewhere: dict[str, dict] = {}  # live runs listed in Redis: id -> record
        self.queued: dict[str, dict] = {}  # runs queued here, no worker yet: id -> their job
        self.missing: dict[str, float] = {}  # queued runs Redis lost: id -> when first seen
        self._attach = threading.Lock()
        self.outage = {"type": "notice", "broker": "down", "detail": "the broker is unreachable"}
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.broker.listeners.append(self._notice)
        self.broker.resets.append(self._relist)
        await self.broker.start(self._owned)
        self._tasks.append(asyncio.create_task(self._watch_forever(), name="broker-runs"))

    def _owned(self, run_id: str):
        run, publisher = self.runs.get(run_id), self.publishers.get(run_id)
        if run is None or publisher is None:
            return None
        return run.handle, publisher.flushed

    # -- runs created here -----------------------------------------------------------------
    def new_handle(self, run_id: str, config: RunConfig, table: Table | None) -> RunHandle:
        if self.train == "workers":
            return RemoteRun(
                run_id,
                self.broker,
                self.loop,
                home=True,
                start_paused=config.start_paused,
                steps_per_second=config.steps_per_second,
            )
        return super().new_handle(run_id, config, table)

    def _record(self, run: LiveRun, trainer: str) -> dict:
        return {
            "config": pack(run.config.model_dump()),
            "created": repr(run.created),
            "home": self.broker.node,
            "addr": self.address,
            "trainer": trainer,
        }

    async def announce(self, run: LiveRun, table: Table | None) -> None:
        if not isinstance(run.handle, RemoteRun):
            return  # the publisher lists it once the broker answers
        job = {"run": run.id, "config": pack(run.config.model_dump()), "table": encode_table(table)}
        try:
            if not self.broker.up:
                raise ConnectionError("down")
            pipe = self.broker.redis.pipeline(transaction=True)
            pipe.hset(keys.run(run.id), mapping=self._record(run, ""))
            pipe.sadd(keys.LIVE, run.id)
            pipe.xadd(keys.JOBS, job)
            await pipe.execute()
            self.queued[run.id] = job  # until a worker takes it: Redis may lose the job
        except ERRORS as exc:
            self.broker.failed(exc)
            await asyncio.to_thread(self.store.delete_run, run.id)  # it never existed
            raise TooManyRuns("the broker is unreachable: no worker can take a run now") from exc

    def outlet(self, run: LiveRun) -> Sink:
        if isinstance(run.handle, RemoteRun):
            return Follow(run, run.channel)  # the worker publishes; this home records it
        record = self._record(run, self.broker.node)
        publisher = Publisher(self.broker, run.id, run.handle, self.loop, record)
        self.publishers[run.id] = publisher
        publisher.start()
        return Follow(run, Tee(run.channel, publisher))  # knobs may turn through others

    # -- runs live elsewhere -----------------------------------------------------------------
    def get(self, run_id: str) -> LiveRun | None:
        run = self.runs.get(run_id)
        if run is None and run_id in self.elsewhere:
            run = self._attached(run_id, self.elsewhere[run_id])
        return run

    async def watch(self, run_id: str) -> LiveRun | None:
        if not self.broker.up_since:  # just started: give the first connection a moment
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STARTUP_WAIT):
                    await self.broker.ready()
        if run_id not in self.runs and run_id not in self.elsewhere:
            await self._look_up(run_id)  # listed a moment ago: not in the directory yet
        run = self.get(run_id)
        if run is not None and run.id in self.watched:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CATCH_UP_TIMEOUT):
                    await run.handle.caught_up.wait()
        if run is not None:  # a viewer joining during an outage hears of it in its hello
            run.channel.notice = None if self.broker.up else self.outage
        return run

    async def fed_elsewhere(self, run_id: str) -> str | None:
        """The process an outside run's script streams to, when it is not this one."""
        run = self.runs.get(run_id)
        if run is not None and (run_id not in self.watched or not run.handle.alive):
            return None  # ours, or its end has reached this process
        if run_id not in self.elsewhere:
            await self._look_up(run_id)
        record = self.elsewhere.get(run_id)
        if record is None or record["config"].get("source") != "external":
            return None
        where = f" at {record['addr']}" if record.get("addr") else ""
        return f"process {record.get('home') or '?'}{where}"

    async def _look_up(self, run_id: str) -> None:
        if not self.broker.up:
            return
        redis = self.broker.redis
        try:
            if await redis.sismember(keys.LIVE, run_id):
                raw = await redis.hgetall(keys.run(run_id))
                if raw:
                    self.elsewhere.setdefault(run_id, decode_record(raw))
        except ERRORS as exc:
            self.broker.failed(exc)

    def _attached(self, run_id: str, record: dict) -> LiveRun:
        with self._attach:
            if run_id in self.runs:
                return self.runs[run_id]
            config, controls = shape_of(record["config"])
            handle = RemoteRun(
                run_id,
                self.broker,
                self.loop,
                record.get("trainer"),
                steps_per_second=getattr(config, "steps_per_second", None),
                seed=lambda step: self._seed(run, step),
                controls=controls,
            )
            run = LiveRun(run_id, config, handle, self.loop, record["created"])
            self.runs[run_id] = run
            self.watched.add(run_id)

        def begin() -> None:
            run.pump = self.loop.create_task(run.channel.pump(), name=f"pump-{run_id}")
            handle.start(Follow(run, run.channel))

        handle._soon(begin)
        return run

    def _seed(self, run: LiveRun, first: int) -> None:
        """A trimmed stream: what came before its first entry, from the shared store."""
        record = self.store.get_run(run.id)
        if record is None:
            return
        seed_earlier(run.channel, self.store, record, first)
        events = self.store.read_events(run.id, types=set(DISCRETE_EVENTS))
        run.channel.events.extend(e for e in events if (e.get("step") or 0) < first)

    def live_count(self, outside: bool = False) -> int:
        return sum(
            1
            for r in self.runs.values()
            if r.handle.alive and r.outside == outside and r.id not in self.watched
        )

    def checkpoint(self) -> None:
        for run in self.runs.values():
            if run.handle.state.live and run.id not in self.watched:
                self.store.set_state(run.id, run.handle.state, step=run.handle.current_step)

    def _notice(self, up: bool, detail: str) -> None:
        """Every live channel's viewers hear that the broker went away or came back."""
        message = {"type": "notice", "broker": "up" if up else "down", "detail": detail}
        if up:
            self._relist()
        else:
            self.outage = message
        for run in list(self.runs.values()):
            if run.handle.alive:
                run.channel.on_event(run.id, message)

    def _relist(self) -> None:
        """Redis may have lost the runs trained here: each publisher lists its run again.

        The runs a worker trains for this home are listed again by the home, which wrote
        their records; a queued run whose job was lost with Redis is queued again by the
        reaper (`_requeue_lost`), once every process has had time to reconnect."""
        for publisher in self.publishers.values():
            if not publisher.done.is_set():
                publisher.listed_again()
        homed = [
            run
            for run in self.runs.values()
            if isinstance(run.handle, RemoteRun) and run.handle.home and run.handle.trainer
        ]
        if homed:
            self.loop.create_task(self._list_homed(homed), name="broker-relist")

    async def _list_homed(self, runs: list[LiveRun]) -> None:
        try:
            pipe = self.broker.redis.pipeline(transaction=True)
            for run in runs:
                if run.handle.alive:
                    pipe.hset(keys.run(run.id), mapping=self._record(run, run.handle.trainer))
                    pipe.sadd(keys.LIVE, run.id)
            await pipe.execute()
        except ERRORS as exc:
            self.broker.failed(exc)  # listed again at the next reconnection

    # -- the directory and the reaper --------------------------------------------------------
    async def _watch_forever(self) -> None:
        reaped_at = 0.0
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            if not self.broker.up:
                continue
            try:
                await self._refresh()
                if time.monotonic() - reaped_at > REAP_INTERVAL:
                    reaped_at = time.monotonic()
                    if self.broker.settled():
                        await self._reap()
                    await self._requeue_lost()
            except ERRORS as exc:
                self.broker.failed(exc)
            except Exception:
                log.exception("could not follow the broker's runs")

    async def _refresh(self) -> None:
        redis = self.broker.redis
        listed = {i.decode() for i in await redis.smembers(keys.LIVE)}
        for run_id in listed:
            known = self.elsewhere.get(run_id)
            if known is None or not known.get("trainer"):
                raw = await redis.hgetall(keys.run(run_id))
                if raw:
                    self.elsewhere[run_id] = decode_record(raw)
                    self._learn_trainer(run_id)
        for run_id in set(self.elsewhere) - listed:
            del self.elsewhere[run_id]

    def _learn_trainer(self, run_id: str) -> None:
        run = self.runs.get(run_id)
        trainer = self.elsewhere[run_id].get("trainer")
        if run is not None and isinstance(run.handle, RemoteRun) and trainer:
            run.handle.trainer = run.handle.trainer or trainer

    async def _reap(self) -> None:
        for run_id, record in list(self.elsewhere.items()):
            for role in ("trainer", "home"):
                node = record.get(role)
                if node and not await self.broker.alive(node):
                    await self._end_dead(
                        run_id, f"its {'training' if role == 'trainer' else 'web'} process stopped"
                    )
                    break
        await self._orphans()

    async def _requeue_lost(self) -> None:
        """Queue again, once, the runs queued here whose job Redis no longer holds.

        Redis without persistence loses the job stream when it restarts; the run would stay
        `starting` forever. Its home still has the job, and writes it again with the run's
        record and listing, in one script that does nothing if Redis holds the record or
        the run's stream: so a run is never queued twice, nor trained twice (a worker that
        took it writes its stream first, and CLAIM in app/broker/worker.py lets one worker
        have a run). It waits REQUEUE_GRACE s after first finding the record gone, for a
        worker that took the run just before the restart to reconnect and begin its stream
        (also when Redis restarted between two heartbeats, which resets no settle time).
        """
        for run_id in list(self.queued):
            run = self.runs.get(run_id)
            if run is None or not run.handle.alive or run.handle.trainer:
                del self.queued[run_id]  # taken, ended or deleted: nothing is queued any more
                self.missing.pop(run_id, None)
        redis, now = self.broker.redis, time.monotonic()
        for run_id, job in list(self.queued.items()):
            if await redis.exists(keys.run(run_id), keys.stream(run_id)):
                self.missing.pop(run_id, None)
                continue
            since = self.missing.setdefault(run_id, now)
            if now - since < REQUEUE_GRACE:
                continue
            self.missing.pop(run_id, None)
            record = [x for pair in self._record(self.runs[run_id], "").items() for x in pair]
            argv = [run_id, job["config"], job["table"], *record]
            keys_ = [keys.run(run_id), keys.stream(run_id), keys.LIVE, keys.JOBS]
            if await redis.eval(REQUEUE, len(keys_), *keys_, *argv):
                log.warning("run %s: Redis lost its job (restarted?); queued it again", run_id)

    async def _end_dead(self, run_id: str, reason: str) -> None:
        """One process ends a run whose producer died: the stream, the listing, the store."""
        redis = self.broker.redis
        if not await redis.set(keys.reaped(run_id), self.broker.node, nx=True, ex=keys.ENDED_TTL):
            return
        log.warning("run %s: %s; ending it as interrupted", run_id, reason)
        end = await asyncio.to_thread(interrupt, self.store, run_id, reason)
        if end is None:
            run = self.runs.get(run_id)
            step = run.handle.current_step if run else 0
            state = RunState.INTERRUPTED
            end = end_event(state, step, final_summary(None, state, step, reason))
        pipe = redis.pipeline(transaction=True)
        pipe.xadd(keys.stream(run_id), end_entry(end))
        pipe.srem(keys.LIVE, run_id)
        pipe.expire(keys.stream(run_id), keys.ENDED_TTL)
        pipe.expire(keys.run(run_id), keys.ENDED_TTL)
        await pipe.execute()
        trainer = self.elsewhere.pop(run_id, {}).get("trainer")
        if trainer and await self.broker.alive(trainer):  # its home died: nobody records it
            self.broker.tell(trainer, run_id, "halt", str(RunState.INTERRUPTED))

    async def _orphans(self) -> None:
        """Runs the store calls live that no process lists or records any more."""
        listed = {i.decode() for i in await self.broker.redis.smembers(keys.LIVE)}
        now = time.time()
        for record in await asyncio.to_thread(self.store.list_runs):
            run_id = record["id"]
            if (
                record["state"] in LIVE_STATES
                and run_id not in listed
                and run_id not in self.runs
                and now - record["updated"] > ORPHAN_AGE
            ):
                log.warning("run %s: no process trains it any more; interrupted", run_id)
                await asyncio.to_thread(interrupt, self.store, run_id, "its process stopped")

    async def shutdown(self, timeout: float = 2.0) -> None:
        await super().shutdown(timeout)
        publishers = [p.done.wait() for p in self.publishers.values() if p.task is not None]
        if publishers and self.broker.up:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*publishers)
        for task in self._tasks:
            task.cancel()
        for publisher in self.publishers.values():
            if publisher.task is not None:
                publisher.task.cancel()
        await self.broker.close()
