"""Every Redis key Backbeat uses, and the limits that bound them (README, "Scaling out")."""

PREFIX = "backbeat"
STREAM_MAXLEN = 10_000  # entries kept per run stream (XADD MAXLEN ~): minutes of an unpaced run
ENDED_TTL = 3600  # s a run's stream and record outlive its end (late replays come from the store)
BEAT_INTERVAL = 1.0  # s between a process's heartbeats
BEAT_TTL = 4.0  # s a heartbeat lasts: a process silent this long is dead, its runs interrupted
JOBS_GROUP = "workers"  # the consumer group every `backbeat worker` reads jobs in
JOB_IDLE = 10.0  # s a job read but never acknowledged waits before another worker takes it
MAX_ENTRY_BYTES = 16 * 1024 * 1024  # largest stream entry (a job with an uploaded set's rows)


def node(node_id: str) -> str:
    """A process's heartbeat (SET ... PX): present while the process lives."""
    return f"{PREFIX}:node:{node_id}"


def inbox(node_id: str) -> str:
    """The list a process pops control requests from (BLPOP)."""
    return f"{PREFIX}:ctl:{node_id}"


def reply(call_id: str) -> str:
    """The list a control's answer is pushed to."""
    return f"{PREFIX}:reply:{call_id}"


def run(run_id: str) -> str:
    """A run's record (hash): config, layers, created, home and trainer processes."""
    return f"{PREFIX}:run:{run_id}"


def stream(run_id: str) -> str:
    """A run's messages (XADD): steps blocks and events, in order, capped."""
    return f"{PREFIX}:stream:{run_id}"


def reaped(run_id: str) -> str:
    """Taken (SET NX) by the one process that ends a run whose producer died."""
    return f"{PREFIX}:reaped:{run_id}"


LIVE = f"{PREFIX}:live"  # set of the ids of runs that are live somewhere
JOBS = f"{PREFIX}:jobs"  # stream of run jobs for workers
