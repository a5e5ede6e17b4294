"""Callbacks and History (zoo/train/callbacks.py): early stopping, CSV logging, plots, pandas."""

from __future__ import annotations

import sys

import pytest

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
