"""The Lightning and Keras callbacks end to end, each with the real library and a real server."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras on torch needs no TensorFlow

import httpx
import numpy as np
import pytest
import torch
from _server import ThreadedServer

from app.web.server import create_app
from app.web.settings import Settings

torch.set_num_threads(1)


@pytest.fixture
def server(tmp_path):
    app = create_app(Settings(data_dir=tmp_path / "data"))
    with ThreadedServer(app, ws_max_size=1 << 20) as srv:
        yield srv


def only_run(srv) -> dict:
    [run] = httpx.get(f"{srv.url}/api/runs").json()
    record = httpx.get(f"{srv.url}/api/runs/{run['id']}").json()
    return record, httpx.get(f"{srv.url}/api/runs/{run['id']}/metrics").json()


def data(n: int = 256, seed: int = 0):
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def test_lightning_callback_streams_a_fit(server):
    import lightning.pytorch as pl

    from backbeat.lightning import BackbeatCallback

    class Classifier(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.save_hyperparameters({"lr": 0.1})
            self.net = torch.nn.Sequential(
                torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)
            )

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", torch.nn.functional.cross_entropy(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    x, y = data()
    ds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(ds, batch_size=32)
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[BackbeatCallback(server=server.url, start_server=False)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(Classifier(), loader, loader)
    record, cols = only_run(server)
    assert record["state"] == "finished"
    assert record["layer_names"] == ["net.0", "net.2"] and record["layers"] == [4, 8, 2]
    assert cols["beats"]["step"] == list(range(1, 17))  # 2 epochs of 8 batches
    norms = np.array(cols["echoes"]["grad_norm"], dtype=float)
    assert norms.shape == (16, 2) and np.all(norms > 0)
    assert record["summary"]["test_loss"] is not None  # validation reached the detectors


def test_keras_callback_streams_a_fit_with_gradient_norms(server):
    import keras

    from backbeat.keras import BackbeatCallback

    assert keras.backend.backend() == "torch"
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="tanh", name="hidden"),
            keras.layers.Dense(2, name="out"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x, y = data()
    callback = BackbeatCallback(server=server.url, start_server=False)
    model.fit(x, y, batch_size=32, epochs=2, validation_split=0.25, callbacks=[callback], verbose=0)
    record, cols = only_run(server)
    assert record["state"] == "finished"
    assert record["layer_names"] == ["hidden", "out"]
    steps = cols["beats"]["step"]
    assert steps == list(range(1, 13))  # 192 training rows in batches of 32, twice
    norms = np.array(cols["echoes"]["grad_norm"], dtype=float)
    assert norms.shape == (12, 2) and np.all(norms > 0)
    accuracy = np.array(cols["beats"]["accuracy"], dtype=float)
    assert np.all((accuracy >= 0) & (accuracy <= 1))
    assert record["summary"]["test_loss"] is not None


def test_transformers_trainer_callback_streams_a_fit(server, tmp_path):
    import transformers  # the `hf` extra; make test installs it

    from backbeat.hf import BackbeatCallback

    class Tiny(torch.nn.Module):  # any module that returns a loss works with the Trainer
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(4, 8)
            self.out = torch.nn.Linear(8, 2)

        def forward(self, x, labels=None):
            logits = self.out(torch.tanh(self.hidden(x)))
            loss = torch.nn.functional.cross_entropy(logits, labels)
            return {"loss": loss, "logits": logits}

    x, y = data()
    rows = [{"x": torch.from_numpy(a), "labels": int(b)} for a, b in zip(x, y, strict=True)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=32,
        per_device_eval_batch_size=64,
        num_train_epochs=2,
        learning_rate=0.1,
        logging_steps=1,
        eval_strategy="epoch",
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    callback = BackbeatCallback(server=server.url, start_server=False, measure_every=1)
    torch.manual_seed(0)
    trainer = transformers.Trainer(
        model=Tiny(), args=args, train_dataset=rows, eval_dataset=rows[:64], callbacks=[callback]
    )
    trainer.train()
    record, cols = only_run(server)
    assert record["state"] == "finished"
    assert record["layer_names"] == ["hidden", "out"] and record["layers"] == [4, 8, 2]
    assert cols["beats"]["step"] == list(range(1, 17))  # 256 rows in batches of 32, twice
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert np.allclose(cols["beats"]["loss"], logged, rtol=1e-6)
    norms = np.array(cols["echoes"]["grad_norm"], dtype=float)
    assert norms.shape == (16, 2) and np.all(norms > 0)
    # taken after the Trainer clipped to max_grad_norm=1: the layers' norms fold into the
    # total it logged (before clipping), capped at 1
    total = np.array(cols["extra"]["grad_norm_total"], dtype=float)
    assert np.allclose(np.sqrt((norms**2).sum(1)), np.minimum(total, 1.0), rtol=1e-5)
    assert cols["extra"]["learning_rate"][0] == pytest.approx(0.1)
    assert record["summary"]["test_loss"] is not None  # eval_loss reached the detectors
