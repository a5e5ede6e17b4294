"""zoo.fit / zoo.evaluate / zoo.load: learning, history, metrics, checkpoints, resume, errors, callbacks."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.nn as nn
from conftest import StopAfter, states_equal

import zoo
from zoo import train
from zoo.train import state, trainer

# ---------------------------------------------------------------------------------------------------------
# fixtures: a tiny learnable problem and a tiny model
# ---------------------------------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)


@pytest.fixture(scope="module")
def data():
    return zoo.load_dataset("synthetic", in_chans=1, img_size=16, num_classes=10, train_size=320, test_size=120)


def tiny(num_classes=10, in_chans=1, drop_rate=0.0):
    return zoo.create("lenet5", num_classes=num_classes, in_chans=in_chans, img_size=16, drop_rate=drop_rate)


FAST = {"batch_size": 32, "progress": False}


# ---------------------------------------------------------------------------------------------------------
# learning, history, evaluate
# ---------------------------------------------------------------------------------------------------------


def test_fit_learns_and_records_history(data, tmp_path):
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


def test_evaluate_metrics_are_consistent(data):
    model = tiny()
    zoo.fit(model, data, epochs=1, seed=0, **FAST)
    m = zoo.evaluate(model, data)
    assert m["num_samples"] == len(data.test)
    cm = torch.tensor(m["confusion_matrix"])
    assert cm.shape == (10, 10) and int(cm.sum()) == m["num_samples"]
    labels = data.test.labels
    assert cm.sum(1).tolist() == torch.bincount(labels, minlength=10).tolist()  # rows = true class
    assert m["top1"] == m["accuracy"] == pytest.approx(float(cm.diag().sum()) / m["num_samples"])
    for i, acc in enumerate(m["per_class_accuracy"]):
        assert acc == pytest.approx(float(cm[i, i]) / float(cm[i].sum()))
    assert m["top1"] <= m["top5"] <= 1.0
    # the same numbers by hand
    model.eval()
    with torch.no_grad():
        x = (data.test.images.float() / 255 - data.mean[0]) / data.std[0]
        logits = model(x)
    assert m.loss == pytest.approx(float(nn.functional.cross_entropy(logits, labels)), rel=1e-4)
    assert m.top1 == pytest.approx(float((logits.argmax(1) == labels).float().mean()))
    # a plain (images, labels) pair; top5 is absent with 5 classes or fewer
    few = zoo.load_dataset("synthetic", in_chans=1, img_size=16, num_classes=4, train_size=64, test_size=40)
    m4 = zoo.evaluate(tiny(num_classes=4), (few.test.images, few.test.labels))
    assert m4["top5"] is None and m4["num_samples"] == 40 and len(m4["per_class_accuracy"]) == 4


def test_fit_accepts_tensors_factories_and_options(data):
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


# ---------------------------------------------------------------------------------------------------------
# checkpoints, resume, load
# ---------------------------------------------------------------------------------------------------------


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(data, tmp_path):
    opts = dict(epochs=3, seed=0, augment=True, **FAST)
    torch.manual_seed(0)
    straight = tiny(drop_rate=0.3)  # dropout: the RNG state must be restored too
    zoo.fit(straight, data, **opts)

    torch.manual_seed(0)
    first = tiny(drop_rate=0.3)
    h1 = zoo.fit(first, data, checkpoint_dir=tmp_path, callbacks=[StopAfter(1)], **opts)
    assert len(h1.epochs) == 1 and "simulated kill" in h1.stop_reason
    torch.manual_seed(7)  # the "new process" draws other random numbers before resuming
    torch.rand(100)
    resumed = tiny(drop_rate=0.3)  # a different init: resume must overwrite it
    h2 = zoo.fit(resumed, data, checkpoint_dir=tmp_path, resume=True, **opts)
    assert [e["epoch"] for e in h2.epochs] == [1, 2, 3]
    assert any("resumed" in n for n in h2.notes)
    assert states_equal(straight, resumed)


def test_checkpoint_contents_and_load(data, tmp_path):
    model = tiny()
    zoo.fit(model, data, epochs=1, seed=0, checkpoint_dir=tmp_path, **FAST)
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")} == {"last.pt", "best.pt"}
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)  # no pickled code needed
    assert ckpt["epoch"] == 1 and ckpt["model_config"]["name"] == "lenet5"
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in ckpt["model"])
    assert {"optimizer", "scheduler", "rng", "step", "history"} <= set(ckpt)

    rebuilt = zoo.load(tmp_path / "best.pt")
    assert type(rebuilt) is type(model) and not rebuilt.training
    assert rebuilt.zoo_config == model.zoo_config
    assert states_equal(rebuilt, model)
    # save/load round trip through safetensors
    path = zoo.save(model, tmp_path / "model.safetensors")
    assert states_equal(zoo.load(path), model)
    # a model without zoo_config loads into a model the user builds
    plain = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    zoo.save(plain, tmp_path / "plain.pt")
    with pytest.raises(train.CheckpointError, match="model=model"):
        zoo.load(tmp_path / "plain.pt")
    assert states_equal(zoo.load(tmp_path / "plain.pt", model=nn.Sequential(nn.Flatten(), nn.Linear(4, 2))), plain)


def test_load_strips_compile_and_ddp_prefixes(tmp_path):
    model = tiny()
    state = {f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "prefixed.pt")
    assert states_equal(zoo.load(tmp_path / "prefixed.pt", model=tiny()), model)


def test_corrupt_checkpoint_gives_one_line_error(data, tmp_path):
    zoo.fit(tiny(), data, epochs=1, seed=0, checkpoint_dir=tmp_path, **FAST)
    raw = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(train.CheckpointError) as err:
        zoo.load(tmp_path / "last.pt")
    assert "truncated" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(train.CheckpointError):
        zoo.fit(tiny(), data, epochs=2, checkpoint_dir=tmp_path, resume=True, **FAST)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    state.atomic_save({"a": torch.ones(3)}, target)
    before = target.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        state.atomic_save({"a": torch.zeros(3)}, target)
    assert target.read_bytes() == before  # the old checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


KILLED_RUN = """
import os, signal, sys
import torch
import zoo

torch.set_num_threads(1)
data = zoo.load_dataset("synthetic", in_chans=1, img_size=16, num_classes=10, train_size=320, test_size=120)
torch.manual_seed(0)
model = zoo.create("lenet5", num_classes=10, in_chans=1, img_size=16, drop_rate=0.3)
calls = [0]

def hard_kill(module, args):  # SIGKILL in the middle of epoch 2: no finally, no handler, nothing flushed
    if module.training:
        calls[0] += 1
        if calls[0] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

model.register_forward_pre_hook(hard_kill)
zoo.fit(model, data, epochs=3, seed=0, augment=True, batch_size=32, progress=False, checkpoint_dir=sys.argv[1])
"""


def test_a_process_killed_mid_epoch_resumes_to_the_same_weights(data, tmp_path):
    import subprocess

    steps = -(-len(data.train) // FAST["batch_size"])
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path), str(steps + 4)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -9, proc.stderr[-2000:]  # it really was killed
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != ".zoo.lock")  # the lock died with its holder
    assert names == ["best.pt", "last.pt"]  # nothing half-written left
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1

    opts = dict(epochs=3, seed=0, augment=True, **FAST)
    torch.manual_seed(123)
    resumed = tiny(drop_rate=0.3)
    history = zoo.fit(resumed, data, checkpoint_dir=tmp_path, resume=True, **opts)
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3]
    torch.manual_seed(0)
    straight = tiny(drop_rate=0.3)
    zoo.fit(straight, data, **opts)
    assert states_equal(straight, resumed)


# ---------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------


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


def test_nan_loss_names_epoch_and_step_and_keeps_last_checkpoint(data, tmp_path):
    steps = -(-len(data.train) // FAST["batch_size"])  # 10 per epoch
    model = NaNAfter(tiny(), steps + 3)  # the 3rd step of epoch 2
    with pytest.raises(FloatingPointError, match=r"epoch 2, step 3 of 10"):
        zoo.fit(model, data, epochs=3, seed=0, checkpoint_dir=tmp_path, val_fraction=0, **FAST)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1


def test_keyboard_interrupt_returns_history_and_writes_a_checkpoint(data, tmp_path):
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
        ({"device": "gpu"}, "cuda"),
        ({"precision": "fp16"}, "bf16"),  # fp16 needs CUDA
    ],
)
def test_bad_names_list_the_valid_ones(data, option, valid):
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=valid) as err:
        zoo.fit(model, data, epochs=1, **FAST, **option)
    assert "\n" not in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_channel_and_size_mismatch_is_caught_before_training(data):
    model = zoo.create("lenet5", in_chans=3, img_size=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"in_chans=3.*data has in_chans=1, img_size=16"):
        zoo.fit(model, data, epochs=1, **FAST)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="img_size=16"):
        zoo.fit(zoo.create("lenet5", in_chans=1, img_size=32), data, epochs=1, **FAST)
    with pytest.raises(ValueError, match="num_classes=10"):
        zoo.fit(tiny(num_classes=4), data, epochs=1, **FAST)


# ---------------------------------------------------------------------------------------------------------
# callbacks
# ---------------------------------------------------------------------------------------------------------


def test_early_stopping_and_csv_logger(data, tmp_path):
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


def test_train_config_documents_every_option():
    import dataclasses
    import inspect

    fields = {f.name for f in dataclasses.fields(zoo.TrainConfig)}
    params = set(inspect.signature(zoo.fit).parameters) - {"model", "data", "val"}
    assert fields == params
    defaults = zoo.TrainConfig()
    for name in params:
        assert inspect.signature(zoo.fit).parameters[name].default == getattr(defaults, name), name
        assert dataclasses.fields(zoo.TrainConfig)[0].metadata["help"]
        assert f"{name} (default" in zoo.fit.__doc__  # the docstring lists every option, from the same fields


def test_a_misspelt_fit_option_names_the_nearest():
    with pytest.raises(TypeError, match=r"fit\(\) got an unknown option 'lr_rate'; accepted: .*did you mean 'lr'\?$"):
        zoo.fit(tiny(), (torch.zeros(4, 1, 16, 16, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)), lr_rate=1)


def test_a_last_batch_of_one_image_does_not_break_batchnorm():
    # 33 images at batch 16 would leave a batch of one, which BatchNorm refuses in training mode
    x = torch.randint(0, 256, (33, 1, 8, 8), dtype=torch.uint8)
    y = torch.randint(0, 3, (33,))
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    history = zoo.fit(model, (x, y), epochs=2, batch_size=16, progress=False)
    assert len(history.epochs) == 2


def test_fp16_gradient_scaler_path_scales_skips_checkpoints_and_resumes(data, tmp_path, monkeypatch, recwarn):
    # fp16 is refused off CUDA; letting it through here runs fit's scaler logic (scale, unscale before clipping,
    # skipped steps, scaler state in checkpoints, resume) on the CPU's fp16 autocast and torch's CPU GradScaler
    monkeypatch.setattr(trainer, "resolve_precision", lambda precision, device: "fp16")
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
    zoo.fit(first, data, checkpoint_dir=tmp_path, callbacks=[StopAfter(1)], **opts)
    scaler_state = torch.load(tmp_path / "last.pt", weights_only=True)["scaler"]
    # the scaler's state is checkpointed (an fp16 overflow in that epoch may have halved the initial 65536)
    assert scaler_state["scale"] in (2.0**15, 2.0**16) and scaler_state["_growth_tracker"] >= 0
    resumed = tiny()
    zoo.fit(resumed, data, checkpoint_dir=tmp_path, resume=True, **opts)
    torch.manual_seed(0)
    clean = tiny()
    zoo.fit(clean, data, **opts)
    assert states_equal(clean, resumed)


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_fused_optimizer_steps_like_the_unfused_one(name):
    from zoo.train import optim

    torch.manual_seed(0)
    a, b = tiny(), tiny()
    b.load_state_dict(a.state_dict())
    fused = optim.make_optimizer(name, a, 1e-2, 5e-4)
    assert fused.defaults.get("fused") is True  # CPU float parameters: fused by default
    options = {k: v for k, v in fused.defaults.items() if k not in ("fused", "foreach", "decoupled_weight_decay")}
    plain = type(fused)(optim._param_groups(b, 5e-4), **options, foreach=False)
    x, y = torch.randn(16, 1, 16, 16), torch.randint(0, 10, (16,))
    for _ in range(5):
        for model, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        # the fused kernel orders its float ops differently: equal to ~1e-5 after 5 steps, not bit for bit
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=5e-5)


def test_history_plots_training_curves(data, tmp_path):
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


def test_history_to_pandas(data, monkeypatch):
    pd = pytest.importorskip("pandas")
    history = zoo.fit(tiny(), data, epochs=2, seed=0, **FAST)
    frame = history.to_pandas()
    assert isinstance(frame, pd.DataFrame) and list(frame.index) == [1, 2]
    assert list(frame["val_accuracy"]) == [e["val_accuracy"] for e in history.epochs]
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with pytest.raises(ImportError, match="pip install pandas"):
        history.to_pandas()
