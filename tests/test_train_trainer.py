"""zoo.fit's loop (zoo/train/trainer.py): learning, history, options, precision, bad input caught before
training, NaN losses and interrupts.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

import zoo
from zoo import train
from zoo.train import setup

FAST = {"batch_size": 32, "progress": False}  # fit options of every tiny run here

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)


def test_fit_learns_and_records_history(data, tmp_path, tiny):
    model = tiny()
    history = zoo.fit(model, data, epochs=3, seed=0, **FAST)
    assert isinstance(history, zoo.History)
    assert len(history.epochs) == 3 and [e["epoch"] for e in history.epochs] == [1, 2, 3]
    for record in history.epochs:
        assert set(train.EPOCH_FIELDS) <= set(record)
        assert record["images_per_s"] > 0 and record["seconds"] > 0
    assert history.last["val_accuracy"] > 0.5  # chance is 0.1
    assert history.epochs[-1]["loss"] < history.epochs[0]["loss"]
    assert history.device == "cpu" and history.precision == "fp32"
    assert history.config["epochs"] == 3 and history.config["seed"] == 0 and history.config["lr"] == 1e-2
    assert "epoch   3" in repr(history) and "precision=fp32" in repr(history)
    # exports
    csv_text = history.to_csv(tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0].split(",")[: len(train.EPOCH_FIELDS)] == list(train.EPOCH_FIELDS) and len(lines) == 4
    assert csv_text.splitlines() == lines
    history.to_json(tmp_path / "h.json")
    loaded = json.loads((tmp_path / "h.json").read_text())
    assert loaded == json.loads(json.dumps(history.to_dict()))
    assert loaded["device"] == "cpu" and len(loaded["epochs"]) == 3
    assert history["val_accuracy"] == [e["val_accuracy"] for e in history.epochs]
    # the model comes back bare, on the device, in training mode
    assert next(model.parameters()).device.type == "cpu"


def test_fit_accepts_tensors_factories_and_options(data, tiny):
    model = tiny()
    history = zoo.fit(
        model,
        (data.train.images, data.train.labels),
        epochs=2,
        optimizer=lambda params: torch.optim.Adam(params, lr=5e-3),
        scheduler=lambda opt, total_steps: torch.optim.lr_scheduler.StepLR(opt, step_size=total_steps),
        grad_accum=2,
        clip_grad=1.0,
        precision="bf16",
        seed=1,
        **FAST,
    )
    assert history.precision == "bf16" and history.last["val_accuracy"] is None
    assert history.last["lr"] == pytest.approx(5e-4)  # 10 optimizer steps (grad_accum=2): one decay, at the last
    assert history.last["accuracy"] > 0.2


class NaNAfter(nn.Module):
    """Wraps a model; its output becomes NaN from the ``n``-th training forward on."""

    def __init__(self, model, n):
        super().__init__()
        self.model, self.n, self.calls = model, n, 0

    def forward(self, x):
        out = self.model(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.n:
                out = out * float("nan")
        return out


def test_nan_loss_names_epoch_and_step_and_keeps_last_checkpoint(data, tmp_path, tiny):
    steps = -(-len(data.train) // FAST["batch_size"])  # 10 per epoch
    model = NaNAfter(tiny(), steps + 3)  # the 3rd step of epoch 2
    with pytest.raises(FloatingPointError, match=r"epoch 2, step 3 of 10"):
        zoo.fit(model, data, epochs=3, seed=0, checkpoint_dir=tmp_path, val_fraction=0, **FAST)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1


def test_keyboard_interrupt_returns_history_and_writes_a_checkpoint(data, tmp_path, tiny):
    class Interrupt(zoo.Callback):
        def on_epoch_start(self, history, epoch):
            if epoch == 2:
                raise KeyboardInterrupt

    history = zoo.fit(tiny(), data, epochs=3, seed=0, checkpoint_dir=tmp_path, callbacks=[Interrupt()], **FAST)
    assert len(history.epochs) == 1 and history.interrupted
    assert any("interrupted during epoch 2; resume=True continues from" in n for n in history.notes)
    assert (tmp_path / "last.pt").exists() and not (tmp_path / "interrupted.pt").exists()
    assert zoo.load(tmp_path / "last.pt").zoo_config["name"] == "lenet5"


@pytest.mark.parametrize(
    "option, valid",
    [
        ({"optimizer": "adamx"}, "adamw"),
        ({"scheduler": "cosin"}, "onecycle"),
        ({"precision": "fp8"}, "bf16"),
        ({"device": "tpu"}, "cuda"),  # ("gpu" is understood as CUDA)
        ({"precision": "fp16"}, "bf16"),  # fp16 needs CUDA
    ],
)
def test_bad_names_list_the_valid_ones(data, option, valid, tiny):
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=valid) as err:
        zoo.fit(model, data, epochs=1, **FAST, **option)
    assert "\n" not in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_channel_and_size_mismatch_is_caught_before_training(data, tiny):
    model = zoo.create("lenet5", in_chans=3, img_size=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"in_chans=3.*data has in_chans=1, img_size=16"):
        zoo.fit(model, data, epochs=1, **FAST)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="img_size=16"):
        zoo.fit(zoo.create("lenet5", in_chans=1, img_size=32), data, epochs=1, **FAST)
    with pytest.raises(ValueError, match="num_classes=10"):
        zoo.fit(tiny(num_classes=4), data, epochs=1, **FAST)


def test_a_last_batch_of_one_image_does_not_break_batchnorm():
    # 33 images at batch 16 would leave a batch of one, which BatchNorm refuses in training mode
    x = torch.randint(0, 256, (33, 1, 8, 8), dtype=torch.uint8)
    y = torch.randint(0, 3, (33,))
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    history = zoo.fit(model, (x, y), epochs=2, batch_size=16, progress=False)
    assert len(history.epochs) == 2


@pytest.mark.slow
def test_fp16_gradient_scaler_path_scales_skips_checkpoints_and_resumes(
    data, tmp_path, monkeypatch, recwarn, stop_after, states_equal, tiny
):
    # fp16 is refused off CUDA; letting it through here runs fit's scaler logic (scale, unscale before clipping,
    # skipped steps, scaler state in checkpoints, resume) on the CPU's fp16 autocast and torch's CPU GradScaler
    monkeypatch.setattr(setup, "resolve_precision", lambda precision, device: "fp16")
    opts = dict(epochs=3, seed=0, precision="fp16", clip_grad=1.0, **FAST)
    torch.manual_seed(0)
    straight = tiny()
    poisoned = {"left": 1}

    def inf_once(grad):  # one overflowing gradient: the scaler must skip that step and halve its scale
        if poisoned["left"]:
            poisoned["left"] -= 1
            return torch.full_like(grad, float("inf"))
        return grad

    handle = straight.fc.weight.register_hook(inf_once)
    history = zoo.fit(straight, data, **opts)
    handle.remove()
    assert history.precision == "fp16" and poisoned["left"] == 0
    assert all(torch.isfinite(p).all() for p in straight.parameters())  # the inf step was skipped, not applied
    assert history.last["val_accuracy"] > 0.5
    assert not [w for w in recwarn if "lr_scheduler.step" in str(w.message)]  # a skipped step is not a user error

    torch.manual_seed(0)
    first = tiny()
    zoo.fit(first, data, checkpoint_dir=tmp_path, callbacks=[stop_after(1)], **opts)
    scaler_state = torch.load(tmp_path / "last.pt", weights_only=True)["scaler"]
    # the scaler's state is checkpointed (an fp16 overflow in that epoch may have halved the initial 65536)
    assert scaler_state["scale"] in (2.0**15, 2.0**16) and scaler_state["_growth_tracker"] >= 0
    resumed = tiny()
    zoo.fit(resumed, data, checkpoint_dir=tmp_path, resume=True, **opts)
    torch.manual_seed(0)
    clean = tiny()
    zoo.fit(clean, data, **opts)
    assert states_equal(clean, resumed)


def test_after_fit_timm_resolves_the_training_data(data, tiny):
    """``model.pretrained_cfg`` (what timm's resolve_data_config reads) follows the data the model was trained on."""
    timm = pytest.importorskip("timm")
    model = tiny()
    assert timm.data.resolve_data_config({}, model=model)["mean"] == (0.5,)  # before: the creation-time default
    zoo.fit(model, data, epochs=1, seed=0, **FAST)
    resolved = timm.data.resolve_data_config({}, model=model)
    assert tuple(resolved["input_size"]) == (1, 16, 16)
    assert resolved["mean"] == pytest.approx(tuple(data.mean)) and resolved["std"] == pytest.approx(tuple(data.std))


def test_history_config_records_the_options_the_run_used(tiny, data):
    """A user's SGD(lr=0.01) and loss='mse' used neither zoo's default lr, its weight decay nor label smoothing:
    history.config says what was used; zoo's own optimizer and cross-entropy keep the options as given."""
    model = tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(64, 1, 16, 16)
    y = torch.randn(64, 10)
    history = zoo.fit(model, (x, y), epochs=1, optimizer=opt, loss="mse", seed=0, progress=False)
    assert history.config["lr"] == 0.01
    assert history.config["weight_decay"] == 0
    assert history.config["label_smoothing"] is None
    own = zoo.fit(tiny(), (x[:32], torch.arange(32) % 10), epochs=1, seed=0, progress=False)
    assert own.config["optimizer"] == "adamw" and own.config["label_smoothing"] == 0.1
    assert own.config["weight_decay"] == zoo.train.config.TrainConfig().weight_decay
