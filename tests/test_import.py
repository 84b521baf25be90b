"""`backbeat import`: a TensorBoard log written by torch.utils.tensorboard, and a CSV."""

import math

import numpy as np
import pytest
from torch.utils.tensorboard import SummaryWriter

from app.store import RunStore
from app.web.cli import main
from backbeat.importer import guess


def imported(data) -> tuple[dict, dict]:
    store = RunStore(data)
    try:
        [record] = store.list_runs()
        return record, store.read_steps(record["id"]), store.read_events(record["id"])
    finally:
        store.close()


def test_tensorboard_log_becomes_a_replayable_run(tmp_path, serve, capsys):
    logs = tmp_path / "tb"
    with SummaryWriter(logs) as w:
        for step in range(1, 301):
            w.add_scalar("Loss/train", 2.0 / math.sqrt(step), step)
            w.add_scalar("Accuracy/train", min(1.0, step / 300), step)
            w.add_scalar("grad_norm/fc1", 0.01 * step, step)
            w.add_scalar("grad_norm/fc2", 0.02 * step, step)
            if step % 20 == 0:
                w.add_scalar("Loss/test", 1.0 + 0.001 * step, step)
            w.add_scalar("lr", 0.1, step)  # not a field: ignored
    data = tmp_path / "data"
    assert main(["import", str(logs), "--data", str(data), "--name", "old run"]) == 0
    assert "imported" in capsys.readouterr().out
    record, steps, events = imported(data)
    assert record["state"] == "finished" and record["config"]["dataset"] == "old run"
    assert record["config"]["layers"] == ["fc1", "fc2"]
    assert steps["step"].tolist() == list(range(1, 301))
    expected = 2.0 / np.sqrt(np.arange(1, 301))
    np.testing.assert_allclose(steps["loss"], expected, rtol=1e-6)
    np.testing.assert_allclose(steps["grad_norm"][:, 1], 0.02 * np.arange(1, 301), rtol=1e-6)
    np.testing.assert_allclose(steps["accuracy"][-1], 1.0)
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == list(range(20, 301, 20))
    assert evals[0]["test_loss"] == pytest.approx(1.02)
    with serve(data_dir=data) as api:
        run_id = record["id"]
        url = f"/ws/runs/{run_id}?replay=true&steps_per_second=10000&detail=full"
        with api.client.websocket_connect(url) as ws:
            assert ws.receive_json()["run"]["layer_names"] == ["fc1", "fc2"]
            replayed = []
            while (m := ws.receive_json())["type"] != "end":
                if m["type"] == "frame":
                    replayed += m["beats"]["step"]
        assert replayed == list(range(1, 301))


def test_csv_with_a_map_for_unusual_names(tmp_path, capsys):
    path = tmp_path / "log.csv"
    rows = ["iteration,objective,val_loss,note"]
    rows += [f"{i},{10.0 / i},{'' if i % 5 else 1.0},x" for i in range(1, 51)]
    path.write_text("\n".join(rows) + "\n")
    data = tmp_path / "data"
    assert main(["import", str(path), "--data", str(data), "--map", "objective=loss"]) == 0
    record, steps, events = imported(data)
    assert steps["step"].tolist() == list(range(1, 51))
    np.testing.assert_allclose(steps["loss"], 10.0 / np.arange(1, 51), rtol=1e-6)
    assert [e["step"] for e in events if e["type"] == "eval"] == list(range(5, 51, 5))


def test_import_says_what_is_missing(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_text("step,objective\n1,2.0\n")
    with pytest.raises(SystemExit, match="no loss found among the tags \\(objective\\)"):
        main(["import", str(path), "--data", str(tmp_path / "d")])
    with pytest.raises(SystemExit):
        main(["import", str(path), "--map", "objective=speed"])
    assert "expected TAG=FIELD" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("tag", "field"),
    [
        ("loss", "loss"),
        ("Loss/train", "loss"),
        ("train/acc", "accuracy"),
        ("val_loss", "test_loss"),
        ("Accuracy/test", "test_accuracy"),
        ("grad_norm/layer1", "grad_norm:layer1"),
        ("encoder.fc/grad_norm", "grad_norm:encoder.fc"),
        ("lr", None),
    ],
)
def test_tags_are_mapped_by_name(tag, field):
    assert guess(tag) == field
