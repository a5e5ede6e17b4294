"""Stateful metrics under torchrun (zoo/train/metrics.py): two CPU processes with gloo, each validating its half of
the split; a metric with ``sum_states`` and a torchmetrics.Metric report the F1 of the whole split."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

WORKER = """
import sys
import torch
import torch.nn as nn
import zoo


class MacroF1:
    sum_states = ("confusion",)

    def __init__(self, k):
        self.k = k
        self.reset()

    def reset(self):
        self.confusion = torch.zeros(self.k, self.k, dtype=torch.float64)

    def update(self, out, y):
        self.confusion += torch.bincount(y * self.k + out.argmax(1), minlength=self.k * self.k).view(self.k, self.k)

    def compute(self):
        tp, denom = self.confusion.diag(), self.confusion.sum(0) + self.confusion.sum(1)
        return float((2 * tp / denom.clamp(min=1)).mean())


torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
y = torch.randint(0, 5, (224,), generator=g)
x = torch.randn(224, 8, generator=g) + nn.functional.one_hot(y, 8).float()
class RankF1(MacroF1):
    sum_states = ()  # no states to sum: each rank's value, averaged over the ranks


metrics = {"f1": MacroF1(5), "rank_f1": RankF1(5)}
try:
    import torchmetrics
    metrics["tm"] = torchmetrics.F1Score(task="multiclass", num_classes=5, average="macro")
except ImportError:
    pass
torch.manual_seed(0)
model = nn.Linear(8, 5)
history = zoo.fit(model, (x[:160], y[:160]), val=(x[160:], y[160:]), epochs=2, seed=0, batch_size=16,
                  eval_batch_size=8, metrics=metrics, progress=False)
with torch.no_grad():
    pred = model(x[160:]).argmax(1)
rank = history.rank
last = history.last
saved = {"f1": last["val_f1"], "rank_f1": last["val_rank_f1"], "tm": last.get("val_tm"), "pred": pred, "y": y[160:]}
torch.save(saved, f"{sys.argv[1]}/rank{rank}.pt")
"""


@pytest.mark.ddp
@pytest.mark.slow
def test_stateful_metrics_are_over_the_whole_split_under_torchrun(tmp_path):
    sk = pytest.importorskip("sklearn.metrics")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available in this build")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "ZOO_PROGRESS": "0", "OMP_NUM_THREADS": "1", "ZOO_LOAD_PLUGINS": ""}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    reference = sk.f1_score(ranks[0]["y"].numpy(), ranks[0]["pred"].numpy(), average="macro")
    assert ranks[0]["rank_f1"] == ranks[1]["rank_f1"] != pytest.approx(reference)  # the mean of the halves' F1
    for r in ranks:
        assert r["f1"] == pytest.approx(reference)
        if r["tm"] is not None:
            assert r["tm"] == pytest.approx(reference, abs=1e-6)
