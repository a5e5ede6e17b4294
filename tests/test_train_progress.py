"""fit's progress bar (zoo/train/progress.py): full at each epoch's end, closed with the epoch's validation figure."""

from __future__ import annotations

import pytest

import zoo
from zoo.train import trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)
FAST = {"batch_size": 32, "progress": False}  # fit options of every tiny run here


def test_the_bar_ends_each_epoch_full_with_its_validation_figures(data, capfd, monkeypatch, tiny):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(trainer, "progress_enabled", lambda progress, rank: True)  # as on a terminal
    history = zoo.fit(tiny(), data, epochs=2, seed=0, **{**FAST, "progress": True})
    err = capfd.readouterr().err
    # 288 training images at batch 32: 9 batches, fewer than the 25 between refreshes
    for epoch in (1, 2):
        line = [s for s in err.replace("\r", "\n").splitlines() if s.startswith(f"lenet5 epoch {epoch}/2")][-1]
        assert "9/9" in line and "100%" in line
        assert f"val_accuracy={history.epochs[epoch - 1]['val_accuracy']:.4f}" in line
        assert f"loss={history.epochs[epoch - 1]['loss']:.4f}" in line


def test_compares_bars_name_their_model(data, capfd, monkeypatch):
    """Two models, two epochs: four bars, each saying whose it is (not four anonymous 'epoch 1/2' bars)."""
    pytest.importorskip("tqdm")
    monkeypatch.setattr(trainer, "progress_enabled", lambda progress, rank: True)
    results = zoo.compare(["lenet5", "mlp"], dataset=data, epochs=2, batch_size=32, latency_runs=0, progress=True)
    assert not any(r.get("error") for r in results.rows)
    lines = capfd.readouterr().err.replace("\r", "\n").splitlines()
    for name in ("lenet5", "mlp"):
        for epoch in (1, 2):
            assert any(s.startswith(f"{name} epoch {epoch}/2") and "100%" in s for s in lines), (name, epoch)
    assert not any(s.startswith("epoch ") for s in lines)
