"""The EMA of the weights (``fit(ema=...)``, zoo/train/ema.py): timm's ModelEmaV3 update, evaluated and delivered
when on, and resumed bit-equal from a run stopped mid-epoch."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.train.ema import ModelEma

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)
FAST = {"batch_size": 32, "progress": False}  # fit options of every tiny run here


def bn_net():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 3))


def test_the_update_is_timms_model_ema_v3(states_equal):
    timm_utils = pytest.importorskip("timm.utils")
    torch.manual_seed(0)
    model = bn_net()
    ours, theirs = ModelEma(model, 0.9), timm_utils.ModelEmaV3(model, decay=0.9)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(1, 6):  # step 1 copies (decay 0), then averages weights and BatchNorm statistics
        x, y = torch.randn(8, 1, 16, 16), torch.randint(0, 3, (8,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        ours.update(model, step)
        theirs.update(model, step=step)
        assert states_equal(ours.module, theirs.module), step
    assert not states_equal(ours.module, model) and int(ours.module[1].num_batches_tracked) == 5


def test_a_run_stopped_mid_epoch_resumes_to_the_same_average(data, tmp_path, tiny, states_equal, signal_at):
    opts = dict(epochs=2, seed=0, ema=0.9, **FAST)
    torch.manual_seed(0)
    straight = tiny(drop_rate=0.3)
    zoo.fit(straight, data, checkpoint_dir=tmp_path / "straight", **opts)

    torch.manual_seed(0)
    first = tiny(drop_rate=0.3)
    hook = first.register_forward_pre_hook(signal_at(9 + 4))  # 9 steps per epoch: batch 4 of epoch 2
    history = zoo.fit(first, data, checkpoint_dir=tmp_path / "resumed", **opts)
    hook.remove()
    assert history.interrupted and "after batch 4 of epoch 2" in history.notes[-1]
    resumed = tiny(drop_rate=0.3)
    zoo.fit(resumed, data, checkpoint_dir=tmp_path / "resumed", resume=True, **opts)

    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert a["ema"].keys() == b["ema"].keys() and all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert states_equal(straight, resumed)


def test_the_average_is_validated_saved_as_best_and_left_in_the_model(tmp_path, tiny, states_equal):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 256, (96, 1, 16, 16), dtype=torch.uint8, generator=g), torch.randint(0, 10, (96,))
    xv, yv = torch.randint(0, 256, (40, 1, 16, 16), dtype=torch.uint8, generator=g), torch.randint(0, 10, (40,))
    model = tiny()
    history = zoo.fit(model, (x, y), val=(xv, yv), epochs=1, seed=0, ema=0.8, checkpoint_dir=tmp_path, **FAST)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    averaged = {k: v for k, v in model.state_dict().items()}
    assert all(torch.equal(averaged[k], last["ema"][k]) for k in averaged)  # the model holds the average
    assert not all(torch.equal(last["model"][k], last["ema"][k]) for k in averaged)  # which is not the last weights
    assert states_equal(zoo.load(tmp_path / "best.pt"), model)
    assert history.last["val_loss"] == pytest.approx(zoo.evaluate(model, (xv, yv)).loss)
    raw = tiny()
    raw.load_state_dict(last["model"])
    assert zoo.evaluate(raw, (xv, yv)).loss != pytest.approx(history.last["val_loss"])


def test_a_bad_decay_is_one_line(tiny):
    with pytest.raises(ValueError, match=r"ema must be in \(0, 1\), a decay such as 0.999") as err:
        zoo.fit(tiny(), (torch.zeros(4, 1, 16, 16), torch.zeros(4, dtype=torch.long)), ema=1.5)
    assert "\n" not in str(err.value)
