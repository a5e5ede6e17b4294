"""Checkpoints (zoo/modelfile.py, zoo/train/resume.py): contents, zoo.load, prefixes, corrupt files, atomic writes,
and a process killed mid-epoch that resumes to the same weights. Resume after changed options: test_train_resume.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn as nn

import zoo
from zoo import train
from zoo.files import atomic_write

FAST = {"batch_size": 32, "progress": False}  # fit options of every tiny run here

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(data, tmp_path, stop_after, states_equal, tiny):
    opts = dict(epochs=3, seed=0, augment=True, **FAST)
    torch.manual_seed(0)
    straight = tiny(drop_rate=0.3)  # dropout: the RNG state must be restored too
    zoo.fit(straight, data, **opts)

    torch.manual_seed(0)
    first = tiny(drop_rate=0.3)
    h1 = zoo.fit(first, data, checkpoint_dir=tmp_path, callbacks=[stop_after(1)], **opts)
    assert len(h1.epochs) == 1 and "simulated kill" in h1.stop_reason
    torch.manual_seed(7)  # the "new process" draws other random numbers before resuming
    torch.rand(100)
    resumed = tiny(drop_rate=0.3)  # a different init: resume must overwrite it
    h2 = zoo.fit(resumed, data, checkpoint_dir=tmp_path, resume=True, **opts)
    assert [e["epoch"] for e in h2.epochs] == [1, 2, 3]
    assert any("resumed" in n for n in h2.notes)
    assert states_equal(straight, resumed)


def test_checkpoint_contents_and_load(data, tmp_path, states_equal, tiny):
    model = tiny()
    zoo.fit(model, data, epochs=1, seed=0, checkpoint_dir=tmp_path, **FAST)
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")} == {"last.pt", "best.pt"}
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)  # no pickled code needed
    assert ckpt["epoch"] == 1 and ckpt["zoo_config"]["name"] == "lenet5"
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


def test_load_strips_compile_and_ddp_prefixes(tmp_path, states_equal, tiny):
    model = tiny()
    state = {f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "prefixed.pt")
    assert states_equal(zoo.load(tmp_path / "prefixed.pt", model=tiny()), model)


def test_corrupt_checkpoint_gives_one_line_error(data, tmp_path, tiny):
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
    atomic_write(target, lambda f: torch.save({"a": torch.ones(3)}, f))
    before = target.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, lambda f: torch.save({"a": torch.zeros(3)}, f))
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


@pytest.mark.slow
def test_a_process_killed_mid_epoch_resumes_to_the_same_weights(data, tmp_path, states_equal, tiny):

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
