"""Nothing lost: resume that restores everything (mid-epoch too), preemption by SIGTERM / SIGINT, options that may
and may not change on resume, owned checkpoint folders, models whose output is a tuple."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.files import RunDirBusy, RunDirLock
from zoo.weights import CheckpointError

FAST = {"batch_size": 32, "progress": False}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)


@pytest.fixture(scope="module")
def data():
    return zoo.load_dataset("synthetic", in_chans=1, img_size=16, num_classes=10, train_size=320, test_size=64)


def tiny(drop_rate=0.3):
    return zoo.create("lenet5", num_classes=10, in_chans=1, img_size=16, drop_rate=drop_rate)


# ---------------------------------------------------------------------------------------------------------
# preemption: stop at a step boundary with the checkpoint; resume from that exact batch, bit-equal
# ---------------------------------------------------------------------------------------------------------

SIGTERM_RUN = """
import os, signal, sys
import torch
import zoo

torch.set_num_threads(1)
data = zoo.load_dataset("synthetic", in_chans=1, img_size=16, num_classes=10, train_size=320, test_size=64)
torch.manual_seed(0)
model = zoo.create("lenet5", num_classes=10, in_chans=1, img_size=16, drop_rate=0.3)
calls = [0]

def term(module, args):  # what a cluster scheduler does to a job: SIGTERM, in the middle of epoch 2
    if module.training:
        calls[0] += 1
        if calls[0] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGTERM)

model.register_forward_pre_hook(term)
zoo.fit(model, data, epochs=3, seed=0, augment=True, batch_size=32, progress=False, checkpoint_dir=sys.argv[1])
print("not reached")
"""


@pytest.mark.slow
def test_sigterm_mid_epoch_checkpoints_exits_143_and_resumes_bit_equal(data, tmp_path, states_equal):
    steps = 9  # 288 training images (a tenth is held out to validate) at batch 32
    proc = subprocess.run(
        [sys.executable, "-c", SIGTERM_RUN, str(tmp_path), str(steps + 4)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "not reached" not in proc.stdout
    assert "stopped by SIGTERM after batch 4 of epoch 2" in proc.stderr
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["partial"]["epoch"] == 2 and ckpt["partial"]["batch"] == 4
    assert ckpt["step"] == steps + 4

    opts = dict(epochs=3, seed=0, augment=True, **FAST)
    torch.manual_seed(123)
    resumed = tiny()
    history = zoo.fit(resumed, data, checkpoint_dir=tmp_path, resume=True, **opts)
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3]
    assert any("after batch 4 of epoch 2" in n for n in history.notes)
    torch.manual_seed(0)
    straight = tiny()
    clean = zoo.fit(straight, data, **opts)
    assert states_equal(straight, resumed)
    assert history["loss"] == clean["loss"]  # the resumed epoch's record counts the batches before the stop too


def test_ctrl_c_stops_at_a_step_and_resumes_a_user_dataloader_bit_equal(tmp_path, states_equal, signal_at):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 16, 16, generator=g), torch.randint(0, 10, (96,), generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True)
    opts = dict(epochs=2, seed=0, scheduler=None, progress=False)
    torch.manual_seed(0)
    model = tiny()
    hook = model.register_forward_pre_hook(signal_at(9, signal.SIGINT))  # batch 3 of epoch 2 (6 per epoch)
    history = zoo.fit(model, loader, checkpoint_dir=tmp_path, **opts)
    hook.remove()
    assert history.interrupted and len(history.epochs) == 1
    assert "stopped by SIGINT after batch 3 of epoch 2" in history.notes[-1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # fit put the handler back
    torch.manual_seed(7)
    resumed = tiny()
    zoo.fit(resumed, loader, checkpoint_dir=tmp_path, resume=True, **opts)
    torch.manual_seed(0)
    straight = tiny()
    zoo.fit(straight, loader, **opts)
    assert states_equal(straight, resumed)


def test_checkpoint_every_writes_mid_epoch_and_orphans_are_cleaned(data, tmp_path):
    orphans = [tmp_path / ".last.pt.zoo-abc123.tmp", tmp_path / ".best.pt.k2j4_9xq.tmp"]  # today's, and older zoo's
    for orphan in orphans:
        orphan.write_bytes(b"x" * 1000)  # what a kill during a save leaves
    mine = [tmp_path / ".notes.tmp", tmp_path / ".last.pt.mine.tmp"]  # the user's own: not zoo's naming pattern
    for p in mine:
        p.write_text("keep me")
    zoo.fit(tiny(), data, epochs=1, checkpoint_every=4, checkpoint_dir=tmp_path, **FAST)
    assert not any(orphan.exists() for orphan in orphans)
    assert all(p.read_text() == "keep me" for p in mine)
    # the epoch ended, so last.pt holds it complete; a run stopped in epoch 1 after step 4 or 8 would hold that
    assert torch.load(tmp_path / "last.pt", weights_only=True)["partial"] is None


# ---------------------------------------------------------------------------------------------------------
# what may change on resume, and what may not
# ---------------------------------------------------------------------------------------------------------


def test_a_finished_run_extends_with_more_epochs_on_a_replanned_schedule(data, tmp_path):
    first = zoo.fit(tiny(0.0), data, epochs=2, seed=0, checkpoint_dir=tmp_path, **FAST)
    assert first.last["lr"] < 1e-3  # the one-cycle schedule annealed to ~0 at the end of the 2-epoch plan
    more = zoo.fit(tiny(0.0), data, epochs=4, seed=0, checkpoint_dir=tmp_path, resume=True, **FAST)
    assert [e["epoch"] for e in more.epochs] == [1, 2, 3, 4]
    assert any("epochs 2 -> 4" in n and "re-planned over 4 epochs (36 steps) from step 18" in n for n in more.notes)
    assert more.epochs[2]["lr"] > 1e-3 > more.epochs[3]["lr"]  # mid-plan, then annealed again at the new end


def test_a_new_lr_is_applied_on_resume(data, tmp_path):
    opts = dict(seed=0, scheduler=None, checkpoint_dir=tmp_path, **FAST)
    zoo.fit(tiny(0.0), data, epochs=1, lr=1e-3, **opts)
    history = zoo.fit(tiny(0.0), data, epochs=2, lr=5e-4, resume=True, **opts)
    assert history.epochs[0]["lr"] == 1e-3 and history.epochs[1]["lr"] == 5e-4
    assert history.config["lr"] == 5e-4


@pytest.mark.parametrize(
    "change, pattern",
    [
        ({"optimizer": "sgd"}, r"optimizer \('adamw' -> 'sgd'\)"),
        ({"batch_size": 16}, r"batch_size \(32 -> 16\)"),
        ({"loss": "mse"}, r"loss"),
    ],
)
def test_options_that_cannot_change_on_resume_are_named(data, tmp_path, change, pattern):
    zoo.fit(tiny(0.0), data, epochs=1, seed=0, checkpoint_dir=tmp_path, **FAST)
    opts = {**FAST, **change}
    with pytest.raises((CheckpointError, ValueError), match=pattern) as info:
        zoo.fit(tiny(0.0), data, epochs=2, seed=0, checkpoint_dir=tmp_path, resume=True, **opts)
    assert "\n" not in str(info.value)


def test_last_pt_records_the_best_score_it_has_seen(data, tmp_path):
    history = zoo.fit(tiny(0.0), data, epochs=2, seed=0, checkpoint_dir=tmp_path, **FAST)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["best"] == {"monitor": "val_accuracy", "score": max(history["val_accuracy"])}


def test_a_resumed_run_without_a_seed_keeps_the_seed_it_resumes(data, tmp_path):
    first = zoo.fit(tiny(0.0), data, epochs=1, checkpoint_dir=tmp_path, **FAST)
    again = zoo.fit(tiny(0.0), data, epochs=2, checkpoint_dir=tmp_path, resume=True, **FAST)
    assert again.config["seed"] == first.config["seed"]


# ---------------------------------------------------------------------------------------------------------
# owned folders, and models that return more than logits
# ---------------------------------------------------------------------------------------------------------


def test_a_checkpoint_dir_in_use_is_refused_naming_the_holder(data, tmp_path):
    holder = rf"in use by another run \(another run, pid {os.getpid()} on .*\)"
    with RunDirLock(tmp_path, "another run"), pytest.raises(RunDirBusy, match=holder):
        zoo.fit(tiny(), data, epochs=1, checkpoint_dir=tmp_path, **FAST)
    zoo.fit(tiny(), data, epochs=1, checkpoint_dir=tmp_path, **FAST)  # free again


def test_a_model_returning_a_tuple_trains_on_its_logits(data):
    class WithAux(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = tiny(0.0)
            self.aux = nn.Linear(10, 10)

        def forward(self, x):
            logits = self.body(x)
            return (logits, self.aux(logits)) if self.training else logits

    model = WithAux()
    history = zoo.fit(model, data, epochs=2, seed=0, **FAST)
    assert history.last["val_accuracy"] > 0.3
    dict_model = nn.ModuleDict({"m": tiny(0.0)})
    dict_model.forward = lambda x: {"logits": dict_model["m"](x), "features": x}
    assert zoo.evaluate(dict_model, data).num_samples == 64


def test_a_last_pt_of_the_earlier_layout_resumes(data, tmp_path, stop_after, states_equal):
    # before the training state had an EMA and fine-tuning options, last.pt held the same keys less those
    opts = dict(epochs=2, seed=0, **FAST)
    torch.manual_seed(0)
    straight = tiny(0.0)
    zoo.fit(straight, data, **opts)
    torch.manual_seed(0)
    zoo.fit(tiny(0.0), data, checkpoint_dir=tmp_path, callbacks=[stop_after(1)], **opts)
    old = torch.load(tmp_path / "last.pt", weights_only=True)
    del old["ema"]
    for key in ("ema", "freeze", "unfreeze_at", "freeze_bn", "layer_lr_decay"):
        del old["history"]["config"][key]
    torch.save(old, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match=r"cannot resume .* with ema=: it holds no average") as info:
        zoo.fit(tiny(0.0), data, ema=0.9, checkpoint_dir=tmp_path, resume=True, **opts)
    assert "\n" not in str(info.value)
    resumed = tiny(0.0)
    zoo.fit(resumed, data, checkpoint_dir=tmp_path, resume=True, **opts)
    assert states_equal(straight, resumed)
