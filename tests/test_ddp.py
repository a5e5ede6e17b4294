"""zoo.fit under torchrun: two CPU processes with gloo, several launches in a row (a flaky teardown cannot hide)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")
LAUNCHES = 3


def launch_and_check(tmp_path, device: str, torchrun) -> None:
    for launch in range(LAUNCHES):
        out = tmp_path / f"run{launch}"
        out.mkdir()
        torchrun(WORKER, out, device, what=f"launch {launch + 1}")
        ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
        for rank, r in enumerate(ranks):
            assert r["bare"] and r["ddp_alive"] == 0 and not r["group_alive"]
            assert r["world_size"] == 2 and r["epochs"] == 2
            assert r["num_samples"] == 30  # evaluate after fit: no process group left, each rank scores it all
            assert r["device"] == ("cpu" if device == "cpu" else f"cuda:{rank}")  # one GPU per process
        a, b = ranks[0]["state"], ranks[1]["state"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert ranks[0]["val_accuracy"] == ranks[1]["val_accuracy"]  # metrics are all-reduced
        # only rank 0 writes checkpoints, and they are loadable
        assert sorted(p.name for p in (out / "ckpt").iterdir() if p.name != ".zoo.lock") == ["best.pt", "last.pt"]
        ckpt = torch.load(out / "ckpt" / "last.pt", weights_only=True)
        assert not any(k.startswith("module.") for k in ckpt["model"])
        assert all(torch.equal(ckpt["model"][k], a[k]) for k in a)


@pytest.mark.ddp
@pytest.mark.slow
def test_fit_under_torchrun_gives_identical_weights_and_a_clean_exit_every_time(tmp_path, torchrun):
    launch_and_check(tmp_path, "cpu", torchrun)  # gloo


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.cuda
def test_fit_under_torchrun_with_nccl_on_two_gpus(tmp_path, torchrun):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA GPUs: NCCL refuses two ranks on one GPU")
    launch_and_check(tmp_path, "cuda", torchrun)  # nccl
