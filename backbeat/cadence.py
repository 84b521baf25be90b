"""Which steps are measured: every `every`-th, with `every` chosen from a time budget.

Echoes (per-layer gradient norms, update ratios, activation RMS) and the entropy from
logits cost a few torch operations each, as much as 20 % of a small model's step. So the
client measures them only on every `every`-th logged step; `every` is a power of two,
doubled or halved so that measuring stays within `BUDGET` of the training time (the median
of the last few measurements against the running mean time between steps), and so that
measurements come at most `MAX_RATE` a second: the page plays at most ~16 beats a second
and its charts draw at 60 Hz, so a denser measurement is never heard or seen live. The
steps in between carry no echo row: the server holds the last measured one
(docs/protocol.md).

The budget is 1 % although the cost counted is the measuring code's own: a measured step
also leaves the next training steps running on cold caches, which roughly doubles its
real cost on a small model (docs/benchmarks.md, "Client overhead (session 5)").
"""

import math
import statistics
import time
from collections import deque

BUDGET = 0.01  # share of the training time that measuring may take
MAX_RATE = 32.0  # measurements a second at most, however cheap
MAX_EVERY = 256  # the sparsest cadence, whatever measuring costs
COSTS_KEPT = 5  # measurements the cost estimate is the median of
SMOOTHING = 0.05  # weight of the newest step in the running mean interval


class Cadence:
    """`tick` says whether this step is measured; `took` reports what measuring it cost.

    Time is read only on measured steps: the interval between steps is the time since the
    previous measurement over the steps logged since, so an unmeasured step costs a count.
    A caller may count the unmeasured steps itself (`until_due`) and report them (`skip`)
    before its next `tick`.
    """

    def __init__(
        self,
        every: int | None = None,
        budget: float = BUDGET,
        clock=time.perf_counter,
        max_rate: float = MAX_RATE,
    ):
        self.clock = clock
        self.fixed = every is not None
        self.every = max(1, int(every)) if every is not None else 1
        self.budget = budget
        self.max_rate = max_rate
        self.count = 0  # loss steps logged
        self.interval: float | None = None  # s between logged steps (running mean)
        self.since: tuple[float, int] | None = None  # (perf_counter, count) at the last measurement
        self.costs: deque[float] = deque(maxlen=COSTS_KEPT)
        self.warm = False  # the first measurement pays for warm-up: it is not counted
        self.due = True  # the first step is always measured

    def tick(self) -> bool:
        """One logged step: is this one measured? (`due` then tells about the next one.)"""
        measured = self.due
        self.count += 1
        self.due = self.count % self.every == 0
        if measured and not self.fixed:
            self._clock()
        return measured

    def skip(self, steps: int) -> None:
        """`steps` unmeasured steps were logged without `tick` (the run's fast path)."""
        if steps:
            self.count += steps
            self.due = self.count % self.every == 0

    def until_due(self) -> int:
        """Unmeasured steps before the next measured one (0: the coming step is measured)."""
        return -self.count % self.every

    def _clock(self) -> None:
        now = self.clock()
        if self.since is not None:
            dt = (now - self.since[0]) / (self.count - self.since[1])
            if self.interval is None:
                self.interval = dt
            else:  # a pause or a slow validation must not stretch the estimate for long
                weight = min(1.0, SMOOTHING * (self.count - self.since[1]))
                self.interval += weight * (min(dt, 10 * self.interval) - self.interval)
        self.since = (now, self.count)

    def took(self, seconds: float) -> None:
        """A measurement cost this long; adapt `every` to the budget."""
        if self.fixed:
            return
        if not self.warm:
            self.warm = True
            return
        self.costs.append(seconds)
        if not self.interval:
            return
        by_cost = statistics.median(self.costs) / (self.budget * self.interval)
        wanted = max(by_cost, 1.0 / (self.max_rate * self.interval))
        every = 1 << max(0, math.ceil(math.log2(wanted))) if wanted > 1 else 1
        self.every = min(every, MAX_EVERY)
        self.due = self.count % self.every == 0
