"""Run folders, signals, streams, resume and option values, tried as an adversarial user would (issue 20).

Each test is a case that lost data, hung, was silently wrong or ended in a raw traceback before, and must now end
cleanly: the run's files intact, one line saying what was wrong and what is accepted, or the documented exit.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.files import RunDirBusy, RunDirError, RunDirLock, RunDirTaken, atomic_write
from zoo.weights import CheckpointError

FAST = {"batch_size": 32, "progress": False, "seed": 0}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return zoo.load_dataset("synthetic", in_chans=1, img_size=16, num_classes=10, train_size=160, test_size=48)


def tiny():
    return zoo.create("lenet5", num_classes=10, in_chans=1, img_size=16)


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text, text
    return text


# ---------------------------------------------------------------------------------------------------------
# run folders that never lose a byte
# ---------------------------------------------------------------------------------------------------------


def test_a_second_run_into_a_finished_runs_folder_is_refused_and_its_best_pt_kept(data, tmp_path):
    zoo.fit(tiny(), data, epochs=1, checkpoint_dir=tmp_path, **FAST)
    before = {name: (tmp_path / name).read_bytes() for name in ("best.pt", "last.pt")}
    with pytest.raises(
        RunDirTaken, match=r"already holds a run \(last.pt, best.pt\); pass resume=True .* overwrite=True"
    ) as info:
        zoo.fit(tiny(), data, epochs=1, checkpoint_dir=tmp_path, **FAST)
    one_line(info)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before


def test_overwrite_replaces_the_run(data, tmp_path):
    zoo.fit(tiny(), data, epochs=2, checkpoint_dir=tmp_path, **FAST)
    (tmp_path / "history.json").write_text("{}")  # what `zoo train` writes next to them
    zoo.fit(tiny(), data, epochs=1, checkpoint_dir=tmp_path, overwrite=True, **FAST)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and not (tmp_path / "history.json").exists()


def test_overwrite_of_a_folder_in_use_deletes_nothing_and_reports_the_lock(data, tmp_path):
    zoo.fit(tiny(), data, epochs=1, checkpoint_dir=tmp_path, **FAST)
    best = (tmp_path / "best.pt").read_bytes()
    with RunDirLock(tmp_path, "a run still training"):
        with pytest.raises(RunDirBusy, match="in use by another run") as info:
            zoo.fit(tiny(), data, epochs=1, checkpoint_dir=tmp_path, overwrite=True, **FAST)
        one_line(info)
        assert (tmp_path / "best.pt").read_bytes() == best


def test_zoo_train_overwrite_of_a_run_still_training_keeps_its_files(capsys, tmp_path):
    from zoo.cli import main

    out = tmp_path / "run"
    base = ["train", "mlp", "--dataset", "synthetic", "--limit", "40", "-e", "1", "-b", "16", "--no-progress"]
    assert main([*base, "--out", str(out)]) == 0
    files = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    capsys.readouterr()
    with RunDirLock(out, "zoo.fit"):
        code = main([*base, "--out", str(out), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 1 and "in use by another run" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")} == files


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("do not truncate me")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".zoo.lock").symlink_to(target)
    with pytest.raises(RunDirError, match="is a symbolic link") as info, RunDirLock(folder):
        pass
    one_line(info)
    assert target.read_text() == "do not truncate me"


def test_a_lock_file_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / ".zoo.lock")
    with pytest.raises(RunDirError, match="not a plain file") as info, RunDirLock(tmp_path):
        pass
    one_line(info)


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP])
def test_a_file_system_without_locks_is_named_as_such(tmp_path, monkeypatch, code):
    import fcntl

    def no_locks(fd, op):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(RunDirError, match="does not support file locks") as info, RunDirLock(tmp_path):
        pass
    assert "in use" not in one_line(info)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_writes_get_the_mode_any_other_file_gets(tmp_path, umask):
    old = os.umask(umask)
    try:
        plain = tmp_path / "plain.json"
        plain.write_text("{}")
        atomic = atomic_write(tmp_path / "atomic.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask
    os.chmod(atomic, 0o600)  # a file the user has restricted stays restricted when rewritten
    atomic_write(atomic, "[]")
    assert stat.S_IMODE(atomic.stat().st_mode) == 0o600


def test_a_checkpoint_dir_under_a_file_is_one_line(data, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match="cannot create the output folder .*: Not a directory") as info:
        zoo.fit(tiny(), data, epochs=1, checkpoint_dir=tmp_path / "f" / "sub", **FAST)
    assert "Errno" not in one_line(info)


def test_an_empty_checkpoint_dir_is_refused(data):
    with pytest.raises(ValueError, match="checkpoint_dir='' names no folder") as info:
        zoo.fit(tiny(), data, epochs=1, checkpoint_dir="", **FAST)
    one_line(info)


# ---------------------------------------------------------------------------------------------------------
# signals honoured to the end
# ---------------------------------------------------------------------------------------------------------


class SignalInEval:
    """A forward pre-hook that signals this process at the first evaluation forward after it is armed, and counts
    the evaluation forwards after that."""

    def __init__(self, signum):
        self.signum, self.armed, self.sent, self.after = signum, False, False, 0

    def __call__(self, module, args):
        if self.armed and not module.training:
            if self.sent:
                self.after += 1
            else:
                self.sent = True
                os.kill(os.getpid(), self.signum)


class Arm(zoo.Callback):
    """Arms ``hook`` at the start (validation) or the end (test scoring) of epoch ``epoch``."""

    def __init__(self, hook, epoch, at_end):
        self.hook, self.epoch, self.at_end = hook, epoch, at_end

    def on_epoch_start(self, history, epoch):
        if epoch == self.epoch and not self.at_end:
            self.hook.armed = True

    def on_epoch_end(self, history, record):
        if record["epoch"] == self.epoch and self.at_end:
            self.hook.armed = True


@pytest.mark.parametrize("during", ["validation", "test scoring"])
def test_ctrl_c_during_the_last_epochs_validation_or_the_test_scoring_stops_the_run(data, tmp_path, during):
    model = tiny()
    hook = SignalInEval(signal.SIGINT)
    model.register_forward_pre_hook(hook)
    arm = Arm(hook, 2, at_end=during == "test scoring")
    history = zoo.fit(model, data, epochs=2, checkpoint_dir=tmp_path, callbacks=[arm], eval_batch_size=8, **FAST)
    assert hook.sent and history.interrupted and history.test is None
    assert "stopped by SIGINT" in history.notes[-1] and "resume=True continues" in history.notes[-1]
    if during == "test scoring":
        assert "during the test scoring" in history.notes[-1]
        assert hook.after == 0  # the scoring stopped at the signal, not after the 6 batches of the test split
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and last["partial"] is None  # the finished training, resumable
    resumed = zoo.fit(tiny(), data, epochs=2, checkpoint_dir=tmp_path, resume=True, **FAST)
    assert not resumed.interrupted and resumed.test is not None and len(resumed.epochs) == 2
    straight = zoo.fit(tiny(), data, epochs=2, **FAST)
    assert resumed.test == straight.test  # scored from the same weights as an uninterrupted run


def test_ctrl_c_during_precise_bn_of_the_last_epoch_stops_the_run(data, tmp_path, monkeypatch):
    from zoo.train import trainer

    real, calls = trainer.recompute, []

    def signalled(*args, **kwargs):  # a Ctrl-C while the statistics are being recomputed
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "recompute", signalled)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(10)
    )
    model(torch.zeros(2, 1, 16, 16))
    history = zoo.fit(model, data, epochs=1, precise_bn=True, checkpoint_dir=tmp_path, **FAST)
    assert calls and history.interrupted and history.test is None and "stopped by SIGINT" in history.notes[-1]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1


def test_sigterm_during_the_test_scoring_ends_the_process_with_143(data, tmp_path):
    model = tiny()
    hook = SignalInEval(signal.SIGTERM)
    model.register_forward_pre_hook(hook)
    with pytest.raises(SystemExit) as info:
        zoo.fit(model, data, epochs=1, checkpoint_dir=tmp_path, callbacks=[Arm(hook, 1, at_end=True)], **FAST)
    assert info.value.code == 128 + signal.SIGTERM and hook.sent
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1


# ---------------------------------------------------------------------------------------------------------
# streams: steps_per_epoch
# ---------------------------------------------------------------------------------------------------------


class Endless(torch.utils.data.IterableDataset):
    """A stream that never ends."""

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        while True:
            yield torch.randn(1, 16, 16, generator=g), int(torch.randint(0, 10, (), generator=g))


def test_steps_per_epoch_bounds_an_endless_stream(tmp_path):
    model = tiny()
    history = zoo.fit(model, Endless(), epochs=2, steps_per_epoch=3, batch_size=8, progress=False,
                      checkpoint_dir=tmp_path)  # fmt: skip
    assert len(history.epochs) == 2
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 6  # one-cycle planned over 6 steps


def test_steps_per_epoch_bounds_an_epoch_and_resumes_mid_epoch_bit_equal(data, tmp_path, signal_at, states_equal):
    opts = dict(epochs=2, steps_per_epoch=3, **FAST)
    torch.manual_seed(0)
    straight = tiny()
    forwards = signal_at(10**6)
    straight.register_forward_pre_hook(forwards)
    zoo.fit(straight, data, **opts)
    assert forwards.calls == 6  # 3 training steps per epoch, not the 5 batches of a pass
    torch.manual_seed(0)
    model = tiny()
    model.register_forward_pre_hook(signal_at(5, signal.SIGINT))  # batch 2 of epoch 2
    assert zoo.fit(model, data, checkpoint_dir=tmp_path, **opts).interrupted
    resumed = tiny()
    zoo.fit(resumed, data, checkpoint_dir=tmp_path, resume=True, **opts)
    assert states_equal(straight, resumed)


def test_a_stream_that_ends_before_steps_per_epoch_steps_on_its_last_partial_accumulation(tmp_path):
    class Short(torch.utils.data.IterableDataset):  # 3 batches of 8, then the epoch's stream ends
        def __iter__(self):
            for i in range(24):
                yield torch.zeros(1, 16, 16), i % 10

    opts = dict(epochs=2, steps_per_epoch=5, grad_accum=2, batch_size=8, scheduler=None, progress=False)
    history = zoo.fit(tiny(), Short(), checkpoint_dir=tmp_path, **opts)
    assert len(history.epochs) == 2
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 4  # batches 1+2, then 3 alone, per epoch


def test_more_steps_per_epoch_than_the_data_holds_is_refused(data):
    with pytest.raises(ValueError, match=r"steps_per_epoch=50 needs 50 batches .* holds 5") as info:
        zoo.fit(tiny(), data, epochs=1, steps_per_epoch=50, **FAST)
    one_line(info)


# ---------------------------------------------------------------------------------------------------------
# resume: the data's fingerprint, a smaller dataset, malformed last.pt
# ---------------------------------------------------------------------------------------------------------


def _pairs(seed, n=160):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8, generator=g), torch.randint(
        0, 10, (n,), generator=g
    )


def test_resume_on_other_data_of_the_same_shape_is_refused_unless_asked(tmp_path):
    zoo.fit(tiny(), _pairs(1), epochs=1, checkpoint_dir=tmp_path, **FAST)
    with pytest.raises(CheckpointError, match=r"training data differs .* resume_new_data=True") as info:
        zoo.fit(tiny(), _pairs(2), epochs=2, checkpoint_dir=tmp_path, resume=True, **FAST)
    one_line(info)
    history = zoo.fit(tiny(), _pairs(2), epochs=2, checkpoint_dir=tmp_path, resume=True, resume_new_data=True, **FAST)
    assert len(history.epochs) == 2 and any("resumed on other data" in n for n in history.notes)
    again = zoo.fit(tiny(), _pairs(2), epochs=3, checkpoint_dir=tmp_path, resume=True, **FAST)  # now the run's data
    assert len(again.epochs) == 3


def test_a_map_style_dataset_with_a_random_transform_resumes_without_a_false_alarm(tmp_path):
    x, y = _pairs(3, 64)

    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return x[i].float() / 255 + 0.01 * torch.randn(1, 16, 16), int(y[i])

    opts = dict(batch_size=16, progress=False, seed=0, num_workers=0)
    zoo.fit(tiny(), Noisy(), epochs=1, checkpoint_dir=tmp_path, **opts)
    assert len(zoo.fit(tiny(), Noisy(), epochs=2, checkpoint_dir=tmp_path, resume=True, **opts).epochs) == 2
    x[0] = 255 - x[0]  # one image changed where the fingerprint reads
    with pytest.raises(CheckpointError, match="sampled inputs differ"):
        zoo.fit(tiny(), Noisy(), epochs=3, checkpoint_dir=tmp_path, resume=True, **opts)


def test_a_dataset_with_a_randomness_of_its_own_resumes_without_a_false_alarm(tmp_path):
    x, y = _pairs(4, 64)

    class OwnNoise(torch.utils.data.Dataset):  # numpy's new generators are not seeded by torch, random or np.random
        rng = np.random.default_rng()

        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            noise = torch.from_numpy(self.rng.normal(size=(1, 16, 16)).astype("float32"))
            return x[i].float() / 255 + 0.01 * noise, int(y[i])

    opts = dict(batch_size=16, progress=False, seed=0, num_workers=0)
    zoo.fit(tiny(), OwnNoise(), epochs=1, checkpoint_dir=tmp_path, **opts)
    assert len(zoo.fit(tiny(), OwnNoise(), epochs=2, checkpoint_dir=tmp_path, resume=True, **opts).epochs) == 2


def test_a_run_stopped_mid_epoch_resumed_on_smaller_data_ends_in_one_line(tmp_path, signal_at):
    model = tiny()
    model.register_forward_pre_hook(signal_at(4, signal.SIGINT))  # batch 4 of epoch 1 (5 per epoch)
    assert zoo.fit(model, _pairs(1), epochs=1, checkpoint_dir=tmp_path, **FAST).interrupted
    small = tuple(t[:64] for t in _pairs(1))
    for extra in ({}, {"resume_new_data": True}):
        with pytest.raises(CheckpointError, match="cannot resume") as info:
            zoo.fit(tiny(), small, epochs=1, checkpoint_dir=tmp_path, resume=True, **FAST, **extra)
        assert "StopIteration" not in one_line(info)


def _damage(ckpt, how):
    if how == "no rng":
        del ckpt["rng"]
    elif how == "epoch a string":
        ckpt["epoch"] = "three"
    elif how == "negative step":
        ckpt["step"] = -4
    elif how == "partial without batch":
        ckpt["partial"] = {"epoch": 1}
    elif how == "model a list":
        ckpt["model"] = [1, 2]
    elif how == "rng of the wrong size":
        ckpt["rng"]["torch"] = torch.zeros(3, dtype=torch.uint8)
    elif how == "optimizer state of another shape":
        ckpt["optimizer"] = {"state": {}, "param_groups": "x"}


@pytest.mark.parametrize(
    "how",
    ["no rng", "epoch a string", "negative step", "partial without batch", "model a list", "rng of the wrong size",
     "optimizer state of another shape"],
)  # fmt: skip
def test_a_last_pt_with_malformed_fields_gives_one_line(data, tmp_path, how):
    zoo.fit(tiny(), data, epochs=1, checkpoint_dir=tmp_path, **FAST)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    _damage(ckpt, how)
    torch.save(ckpt, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="cannot be resumed|another optimizer") as info:
        zoo.fit(tiny(), data, epochs=2, checkpoint_dir=tmp_path, resume=True, **FAST)
    one_line(info)


# ---------------------------------------------------------------------------------------------------------
# option values
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value, pattern",
    [
        ("checkpoint_every", 0, "checkpoint_every must be a positive integer"),
        ("checkpoint_every", -1, "checkpoint_every must be a positive integer"),
        ("checkpoint_every", 1.5, "checkpoint_every must be a positive integer"),
        ("seed", -1, r"seed must be an integer in \[0, 4294967295\]"),
        ("seed", 2**64, r"seed must be an integer in \[0, 4294967295\]"),
        ("seed", "1", "seed must be an integer"),
        ("precise_bn", "yes", "precise_bn must be True, False or None"),
        ("augment", "no", "augment must be True or False"),
        ("compile", 1, "compile must be True or False"),
        ("steps_per_epoch", 0, "steps_per_epoch must be a positive integer"),
        ("num_workers", -2, "num_workers must be an integer >= 0"),
    ],
)
def test_option_values_are_checked_in_one_line_before_any_work(option, value, pattern):
    never = torch.utils.data.TensorDataset(torch.zeros(0))  # never read: the check comes first
    with pytest.raises((ValueError, TypeError), match=pattern) as info:
        zoo.fit(tiny(), never, epochs=1, **{option: value})
    one_line(info)


def test_resume_and_overwrite_together_are_refused(tmp_path):
    with pytest.raises(ValueError, match="pass one") as info:
        zoo.fit(tiny(), _pairs(1), checkpoint_dir=tmp_path, resume=True, overwrite=True)
    one_line(info)


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["train", "mlp", "-d", "synthetic", "--checkpoint-every", "-5"], "--checkpoint-every -5"),
        (["train", "mlp", "-d", "synthetic", "--seed", "-1"], "--seed -1"),
        (["train", "mlp", "-d", "synthetic", "--steps-per-epoch", "0"], "--steps-per-epoch 0"),
        (["compare", "mlp", "-d", "synthetic", "--throughput-batch", "0"], "--throughput-batch 0"),
        (["compare", "mlp", "-d", "synthetic", "--checkpoint-every", "0"], "--checkpoint-every 0"),
        (["train", "mlp", "-d", "synthetic", "--out", ""], "--out ''"),
    ],
)
def test_cli_flag_values_are_usage_errors_naming_the_flag(capsys, tmp_path, argv, flag):
    from zoo.cli import main

    code = main([*argv, *(["--out", str(tmp_path / "o")] if argv[0] == "train" and "--out" not in argv else [])])
    err = capsys.readouterr().err
    assert code == 2 and flag in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_a_torch_dataset_with_string_labels_gives_one_line():
    class Named(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return torch.zeros(1, 16, 16), ["cat", "dog"][i % 2]

    with pytest.raises(TypeError, match="the targets are strings") as info:
        zoo.fit(tiny(), Named(), epochs=1, progress=False, num_workers=0)
    one_line(info)


# ---------------------------------------------------------------------------------------------------------
# DDP: fit twice in one torchrun process
# ---------------------------------------------------------------------------------------------------------

TWO_FITS = """
import json, os, sys
import torch, torch.distributed as dist
import zoo

torch.set_num_threads(1)
data = zoo.load_dataset("synthetic", in_chans=1, img_size=16, num_classes=4, train_size=64, test_size=16)
model = zoo.create("lenet5", num_classes=4, in_chans=1, img_size=16)
seen = []
zoo.fit(model, data, epochs=1, batch_size=16, seed=0, device="cpu", checkpoint_dir=sys.argv[1] + "/a")
seen.append(dist.is_initialized())  # zoo created the group: it is gone
zoo.fit(model, data, epochs=1, batch_size=16, seed=0, device="cpu", freeze="backbone")  # a fine-tune after it
dist.init_process_group("gloo")  # the user's own group is kept
zoo.fit(model, data, epochs=1, batch_size=16, seed=0, device="cpu")
seen.append(dist.is_initialized())
dist.destroy_process_group()
with open(os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.json"), "w") as f:
    json.dump(seen, f)
"""


@pytest.mark.ddp
@pytest.mark.slow
def test_fit_twice_in_one_torchrun_process_neither_hangs_nor_drops_a_users_group(tmp_path):
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available in this build")
    script = tmp_path / "two_fits.py"
    script.write_text(textwrap.dedent(TWO_FITS))
    env = {**os.environ, "ZOO_PROGRESS": "0", "OMP_NUM_THREADS": "1", "ZOO_LOAD_PLUGINS": "",
           "PYTHONPATH": str(Path(zoo.__file__).parents[1])}  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == [False, True]
