"""Sparse measurement: the client's cadence, and the server holding unmeasured echo rows."""

import math

import numpy as np
import pytest

from backbeat.cadence import MAX_EVERY, MAX_RATE, Cadence
from backbeat.run import _value
from backbeat.sender import _num, _row


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(c: Cadence, clock: Clock, steps: int, step_s: float, cost_s: float) -> list[int]:
    """Log `steps` steps of `step_s` each; a measured one costs `cost_s` more."""
    measured = []
    for _ in range(steps):
        clock.now += step_s
        if c.tick():
            measured.append(c.count)
            clock.now += cost_s
            c.took(cost_s)
    return measured


def test_the_cadence_keeps_measuring_within_its_budget():
    clock = Clock()
    c = Cadence(budget=0.02, clock=clock, max_rate=math.inf)
    drive(c, clock, 200, 1e-3, 2e-4)  # a measurement costs a fifth of a step
    assert c.every == 16  # 0.2 / 0.02 = 10 steps between measurements, rounded up to 2^k
    measured = drive(c, clock, 320, 1e-3, 2e-4)
    assert all((m - 1) % 16 == 0 for m in measured) and len(measured) == 20
    spent = len(measured) * 2e-4 / (320 * 1e-3)
    assert spent <= 0.02
    drive(c, clock, 400, 1e-3, 1e-6)  # measuring got cheap: measure every step again
    assert c.every == 1


def test_measurements_come_at_most_max_rate_a_second_however_cheap():
    clock = Clock()
    c = Cadence(clock=clock)  # the defaults: 1 % of the time, at most MAX_RATE a second
    drive(c, clock, 2000, 2e-4, 1e-7)  # 5,000 steps a second, measuring almost free
    assert c.every == 256  # 5,000 / 32 = 156 steps between measurements, rounded up to 2^k
    measured = drive(c, clock, 2560, 2e-4, 1e-7)
    assert len(measured) == 10 and len(measured) / (2560 * 2e-4) <= MAX_RATE
    slow = Cadence(clock=clock)
    drive(slow, clock, 50, 0.1, 1e-4)  # a big model: 10 steps a second, cheap to measure
    assert slow.every == 1  # every step, as the rate allows


def test_the_cadence_is_bounded_and_fixed_when_asked():
    clock = Clock()
    c = Cadence(budget=0.02, clock=clock)
    drive(c, clock, 2000, 1e-4, 1.0)  # absurdly costly measurements
    assert c.every == MAX_EVERY
    fixed = Cadence(every=4)
    assert drive(fixed, clock, 12, 1e-3, 1.0) == [1, 5, 9]  # the first, then every 4th


def test_values_off_the_cpu_are_read_by_the_sender_not_the_training_thread():
    class OnDevice:  # stands for a CUDA tensor: reading it would wait for the GPU
        is_cpu = False

        def __init__(self, v):
            self.v, self.read = v, False

        def item(self):
            raise AssertionError("training must not read a device value")

        def numel(self):
            return 1

        def detach(self):
            return self

        def __float__(self):
            self.read = True
            return self.v

    x = OnDevice(0.25)
    kept = _value(x)
    assert kept is x and not x.read
    assert _num(kept) == 0.25 and x.read  # the sender reads it
    assert _num(OnDevice(math.inf)) is None  # JSON has no Infinity
    assert _row(None, 2) is None  # not measured
    assert _row([1.0, float("nan")], 2) == [1.0, None]
    assert _row([1.0], 2) is None  # a row of the wrong width is not sent as if measured


def layers_run(api) -> str:
    r = api.client.post("/api/runs/external", json={"name": "sparse", "layers": ["a", "b"]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_the_server_holds_unmeasured_rows_and_records_the_measured_steps(serve):
    with serve() as api:
        run_id = layers_run(api)
        post = lambda **b: api.client.post(f"/api/runs/{run_id}/steps", json=b)  # noqa: E731
        r = post(
            step=[1, 2, 3, 4],
            loss=[1.0, 0.9, 0.8, 0.7],
            grad_norm=[[1.0, 2.0], None, None, [3.0, None]],
        )
        assert r.status_code == 200 and r.json()["accepted"] == 4, r.text
        # resent after a reconnect (skipped), then a batch that starts unmeasured
        post(step=[3, 4], loss=[0.8, 0.7], grad_norm=[[9.0, 9.0], None])
        post(step=[5, 6], loss=[0.6, 0.5], grad_norm=[None, [5.0, 6.0]], end="finished")
        cols = api.metrics(run_id)
        got = np.array(cols["echoes"]["grad_norm"], dtype=float)
        want = [[1, 2], [1, 2], [1, 2], [3, np.nan], [3, np.nan], [5, 6]]
        # a null row holds the last measured one; a null value inside a row stays NaN
        np.testing.assert_array_equal(got, np.array(want, dtype=float))
        assert cols["measured"] == [1, 4, 6]
        assert cols["beats"]["step"] == [1, 2, 3, 4, 5, 6]


def test_a_malformed_sparse_batch_is_refused_whole(serve):
    with serve() as api:
        run_id = layers_run(api)
        r = api.client.post(
            f"/api/runs/{run_id}/steps",
            json={"step": [1, 2], "loss": [1.0, 1.0], "grad_norm": [None, [1.0]]},
        )
        assert r.status_code == 422 and "2 values" in r.text
        r = api.client.post(
            f"/api/runs/{run_id}/steps",
            json={"step": [1], "loss": [1.0], "extra": {"step": [1, 2], "values": {"lr": [0.1]}}},
        )
        assert r.status_code == 422 and "lr" in r.text
        assert api.metrics(run_id)["beats"]["step"] == []


def test_a_batch_of_only_unmeasured_steps_still_sends_null_rows():
    """Were the column left out, the server would store NaN (an explosion) for those steps."""
    from backbeat.sender import Sender

    sender = Sender("http://127.0.0.1:9", None, spec=None)
    sender.width = 2
    row = lambda step, grads: (step, 0.0, 0, 1.0, None, None, grads, None, None)  # noqa: E731
    sender.put(row(1, [0.5, 0.25]))
    first = sender._batch(closing=False)
    assert first["grad_norm"] == [[0.5, 0.25]] and "update_ratio" not in first
    sender.put(row(2, None))
    sender.put(row(3, None))
    later = sender._batch(closing=False)
    assert later["grad_norm"] == [None, None]  # held by the server, not NaN
    assert "update_ratio" not in later  # never logged: still absent


def offline_run(every: int):
    """A run whose sender never starts: the rows it would send stay in `pending`."""
    import backbeat

    run = backbeat.init(server="http://127.0.0.1:9", start_server=False, measure_every=every)
    run._sender.start = lambda: None
    return run


def test_the_fast_and_the_full_path_keep_one_count():
    """A lone loss on an unmeasured step takes `log`'s fast path; anything else the full one.
    Mixed, the measured steps are still the first and then every 4th."""
    import torch

    run = offline_run(4)
    told = []
    for i in range(1, 15):
        logits = torch.randn(8, 3)
        told.append(run.measuring)
        if i % 3 == 0:
            run.log({"loss": 1.0 / i, "lr": 0.1}, logits=logits)  # an extra: the full path
        elif i % 5 == 0:
            run.log({"loss": torch.tensor(1.0 / i)}, epoch=1, logits=logits)
        elif i % 2:
            run.log({"loss": torch.tensor(1.0 / i), "accuracy": torch.tensor(0.5)}, logits=logits)
        else:
            run.log({"loss": torch.tensor(1.0 / i)}, logits=logits)
    rows = list(run._sender.pending)
    assert [r[0] for r in rows] == list(range(1, 15))
    measured = [r[0] for r in rows if r[5] is not None]  # the entropy from the logits
    assert measured == [1, 5, 9, 13]
    assert told == [s in measured for s in range(1, 15)]
    assert all(type(r[3]) is float for r in rows)  # CPU losses are read at once
    with_accuracy = [i for i in range(1, 15) if i % 3 and i % 5 and i % 2]
    assert [r[0] for r in rows if r[4] is not None] == with_accuracy
    assert all(r[4] == 0.5 and type(r[4]) is float for r in rows if r[4] is not None)
    assert [r[2] for r in rows][4:] == [1] * 10  # the epoch given at step 5 holds
    assert 0 < float(rows[0][5]) <= 1


def test_the_optimizers_hooks_are_there_only_while_a_measured_step_is_coming():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = offline_run(4).watch(model, opt, activations=True)
    hooked = []
    for _ in range(8):
        hooked.append(
            (len(opt._optimizer_step_pre_hooks), sum(len(m._forward_hooks) for m in model))
        )
        opt.zero_grad()
        loss = model(torch.randn(5, 4)).pow(2).mean()
        loss.backward()
        opt.step()
        run.log({"loss": loss})
    # armed before steps 1 and 5: the first forward also has the ordering hooks (one a layer)
    assert hooked == [(1, 2), (0, 0), (0, 0), (0, 0), (1, 2), (0, 0), (0, 0), (0, 0)]
    rows = list(run._sender.pending)
    assert all(type(r[3]) is float for r in rows)  # a watched run reads CPU losses inline too
    assert [r[0] for r in rows if r[6] is not None] == [1, 5]  # grad norms
    assert [r[0] for r in rows if r[7] is not None] == [1, 5]  # update ratios
    assert [r[0] for r in rows if r[8] is not None] == [1, 5]  # activation RMS
    assert all(len(r[8].resolve()) == 2 and min(r[8].resolve()) > 0 for r in rows[::4])
    run._watch.close()
    assert len(opt._optimizer_step_pre_hooks) == 0
    assert sum(len(m._forward_hooks) for m in model) == 0


def test_all_null_scalar_columns_are_left_out_and_tensors_are_read_by_the_sender():
    """accuracy and entropy are optional columns: left out when all null (the server reads
    NaN either way); a tensor in a column is read when the batch is encoded."""
    import orjson
    import torch

    from backbeat.entropy import entropy_lazy
    from backbeat.sender import Sender, encode

    sender = Sender("http://127.0.0.1:9", None, spec=None)
    row = lambda step, entropy: (step, 0.0, 0, 1.0, None, entropy, None, None, None)  # noqa: E731
    sender.put(row(1, None))
    sender.put(row(2, None))
    first = sender._batch(closing=False)
    assert "accuracy" not in first and "entropy" not in first
    uniform = entropy_lazy(logits=torch.zeros(4, 3))  # a tensor, not yet a number
    sender.put(row(3, uniform))
    sender.put(row(4, None))
    sent = orjson.loads(encode(sender._batch(closing=False)))
    assert sent["entropy"] == [pytest.approx(1.0), None] and "accuracy" not in sent
    assert sent["loss"] == [1.0, 1.0]
