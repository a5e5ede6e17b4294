"""Callbacks and History (zoo/train/callbacks.py): early stopping, CSV logging, plots, pandas."""

from __future__ import annotations

import copy
import csv
import sys

import pytest
import torch
import torch.nn as nn

import zoo

FAST = {"batch_size": 32, "progress": False}  # fit options of every tiny run here

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)


def test_early_stopping_and_csv_logger(data, tmp_path, tiny):
    calls = []

    class Recorder(zoo.Callback):
        def on_fit_start(self, history):
            calls.append(("start", self.model is not None))

        def on_fit_end(self, history):
            calls.append(("end", len(history.epochs)))

    stopper = zoo.EarlyStopping(monitor="val_accuracy", patience=1, min_delta=2.0)  # nothing improves by 2.0
    log = tmp_path / "log.csv"
    history = zoo.fit(tiny(), data, epochs=5, seed=0, callbacks=[stopper, zoo.CSVLogger(log), Recorder()], **FAST)
    assert len(history.epochs) == 2 and "early stopping" in history.stop_reason
    assert calls == [("start", True), ("end", 2)]
    rows = log.read_text().splitlines()
    assert rows[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy") and len(rows) == 3
    with pytest.raises(ValueError, match="val_los"):
        zoo.fit(tiny(), (data.train.images, data.train.labels), epochs=1, callbacks=[zoo.EarlyStopping()], **FAST)


def test_history_plots_training_curves(data, tmp_path, tiny):
    pytest.importorskip("matplotlib")
    history = zoo.fit(tiny(), data, epochs=2, seed=0, **FAST)
    png = history.plot(tmp_path / "curves.png")
    assert png == tmp_path / "curves.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in history.plot(tmp_path / "curves.svg").read_bytes()
    fig = history.plot()  # no path: the figure itself, for a notebook
    loss_ax, acc_ax = fig.axes
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]  # training and validation
    assert list(acc_ax.lines[1].get_ydata()) == [100 * e["val_accuracy"] for e in history.epochs]
    train_only = zoo.fit(tiny(), data.train, epochs=1, seed=0, **FAST).plot()
    assert [len(ax.lines) for ax in train_only.axes] == [1, 1]
    with pytest.raises(ValueError, match=r"must end in \.png, \.svg, \.pdf"):
        history.plot(tmp_path / "curves.jpg")
    with pytest.raises(ValueError, match="no epochs"):
        zoo.History().plot()


def test_history_to_pandas(data, monkeypatch, tiny):
    pd = pytest.importorskip("pandas")
    history = zoo.fit(tiny(), data, epochs=2, seed=0, **FAST)
    frame = history.to_pandas()
    assert isinstance(frame, pd.DataFrame) and list(frame.index) == [1, 2]
    assert list(frame["val_accuracy"]) == [e["val_accuracy"] for e in history.epochs]
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with pytest.raises(ImportError, match="pip install pandas"):
        history.to_pandas()


# ---- per-step hooks ---------------------------------------------------------------------------------------


class Steps(zoo.Callback):
    def __init__(self):
        self.starts, self.ends = [], []

    def on_train_batch_start(self, history, batch):
        self.starts.append(dict(batch))

    def on_train_batch_end(self, history, batch):
        self.ends.append({**batch, "loss": float(batch["loss"])})


def test_per_step_hooks_see_every_batch_with_its_loss_step_and_lr(data, tiny):
    steps = Steps()
    lrs = []

    class LR(zoo.Callback):  # the optimizer's lr at each epoch's end, to compare the hook's with
        def on_epoch_end(self, history, record):
            lrs.append(record["lr"])

    history = zoo.fit(tiny(), data, epochs=2, seed=0, grad_accum=2, callbacks=[steps, LR()], **FAST)
    per_epoch = 9  # 288 training samples in batches of 32
    assert [(b["epoch"], b["batch"]) for b in steps.starts] == [(e, i) for e in (1, 2) for i in range(per_epoch)]
    assert [b["stepped"] for b in steps.ends[:per_epoch]] == [i % 2 == 1 or i == 8 for i in range(per_epoch)]
    assert [b["step"] for b in steps.ends[:4]] == [0, 1, 1, 2] and steps.ends[-1]["step"] == 10
    assert [steps.ends[per_epoch - 1]["lr"], steps.ends[-1]["lr"]] == lrs
    for epoch, record in enumerate(history.epochs, 1):  # equal batches: the epoch's loss is the mean of the hook's
        losses = [b["loss"] for b in steps.ends if b["epoch"] == epoch]
        assert record["loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-5)


def test_only_callbacks_that_override_a_step_hook_are_called_per_step(tmp_path):
    from zoo.train.callbacks import step_callbacks
    from zoo.train.loggers import TensorBoardLogger

    plain, stepping = zoo.EarlyStopping(), Steps()
    quiet, every = TensorBoardLogger(tmp_path), TensorBoardLogger(tmp_path, every_n_steps=5)
    assert step_callbacks([plain, stepping, quiet, every], "end") == [stepping, every]
    assert step_callbacks([plain, stepping, quiet, every], "start") == [stepping]


class StepEMA(zoo.Callback):
    """An exponential moving average of the weights in ten lines, on the public per-step hook."""

    def __init__(self, decay):
        self.decay = decay

    def on_fit_start(self, history):
        self.average = copy.deepcopy(self.model).eval()

    def on_train_batch_end(self, history, batch):
        if batch["stepped"]:
            with torch.no_grad():
                for a, p in zip(self.average.state_dict().values(), self.model.state_dict().values(), strict=True):
                    a.lerp_(p, 1 - self.decay) if a.is_floating_point() else a.copy_(p)


def noisy_problem(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 5, (n,), generator=g)
    return torch.randn(n, 8, generator=g) + nn.functional.one_hot(y, 8).float(), y


def test_a_per_step_ema_callback_improves_on_the_raw_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 5))
    ema = StepEMA(0.9)
    opts = dict(epochs=3, seed=0, optimizer="sgd", lr=0.3, scheduler=None, label_smoothing=0.0, batch_size=16)
    zoo.fit(model, noisy_problem(512, 0), callbacks=[ema], progress=False, **opts)  # a noisy constant-lr run
    val = noisy_problem(512, 1)
    raw, averaged = zoo.evaluate(model, val), zoo.evaluate(ema.average, val)
    assert averaged["loss"] < raw["loss"] and averaged["top1"] > raw["top1"]


# ---- loggers -----------------------------------------------------------------------------------------------


def test_tensorboard_logger_writes_event_files_that_read_back(data, tmp_path, tiny):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from zoo.train.loggers import TensorBoardLogger

    history = zoo.fit(tiny(), data, epochs=2, seed=0, callbacks=[TensorBoardLogger(tmp_path, every_n_steps=3)], **FAST)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "step/loss", "step/lr"} <= set(scalars)
    val = events.Scalars("val_accuracy")
    assert [e.step for e in val] == [1, 2]
    assert [e.value for e in val] == pytest.approx(history["val_accuracy"])
    assert [e.step for e in events.Scalars("step/loss")] == [3, 6, 9, 12, 15, 18]  # 9 steps an epoch
    assert "config" in "".join(events.Tags()["tensors"])


def test_lightning_loggers_take_a_zoo_run(data, tmp_path, tiny):
    loggers = pytest.importorskip("lightning.pytorch.loggers")
    from zoo.train.loggers import LightningLogger

    logger = loggers.CSVLogger(tmp_path, name="zoo", version=0)
    history = zoo.fit(tiny(), data, epochs=2, seed=0, callbacks=[LightningLogger(logger)], **FAST)
    rows = list(csv.DictReader((tmp_path / "zoo" / "version_0" / "metrics.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert [float(r["val_accuracy"]) for r in rows] == pytest.approx(history["val_accuracy"])
    assert "seed: 0" in (tmp_path / "zoo" / "version_0" / "hparams.yaml").read_text()
    with pytest.raises(TypeError, match="has no log_metrics"):
        LightningLogger(object())


def test_zoo_train_logs_to_tensorboard(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from zoo.cli import main

    out, logs = tmp_path / "run", tmp_path / "tb"
    args = ["train", "mlp", "-d", "digits", "--limit", "60", "-e", "1", "--out", str(out), "--seed", "0"]
    assert main([*args, "--logger", "tensorboard", "--log-dir", str(logs)]) == 0
    assert list(logs.glob("events.out.tfevents.*"))
    assert main([*args[:-4], "--out", str(tmp_path / "b"), "--logger", "tensorbord"]) == 2
    assert "did you mean 'tensorboard'" in capsys.readouterr().err
