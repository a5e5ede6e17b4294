"""Run by tests/test_train_metrics_ddp.py under ``torchrun --nproc_per_node=2``: a linear model fitted with stateful
metrics, each rank validating its half of the split; each rank saves what it reported to ``<out>/rank<R>.pt``."""

from __future__ import annotations

import sys

import torch
import torch.nn as nn
from macro_f1 import MacroF1  # tests/macro_f1.py: this script's folder is on its path

import zoo


class RankF1(MacroF1):
    sum_states = ()  # no states to sum: each rank's value, averaged over the ranks


def main(out: str) -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (224,), generator=g)
    x = torch.randn(224, 8, generator=g) + nn.functional.one_hot(y, 8).float()
    metrics = {"f1": MacroF1(5), "rank_f1": RankF1(5)}
    try:
        import torchmetrics

        metrics["tm"] = torchmetrics.F1Score(task="multiclass", num_classes=5, average="macro")
    except ImportError:
        pass
    torch.manual_seed(0)
    model = nn.Linear(8, 5)
    history = zoo.fit(model, (x[:160], y[:160]), val=(x[160:], y[160:]), epochs=2, seed=0, batch_size=16,
                      eval_batch_size=8, metrics=metrics, progress=False)  # fmt: skip
    with torch.no_grad():
        pred = model(x[160:]).argmax(1)
    last = history.last
    saved = {"f1": last["val_f1"], "rank_f1": last["val_rank_f1"], "tm": last.get("val_tm"), "pred": pred,
             "y": y[160:]}  # fmt: skip
    torch.save(saved, f"{out}/rank{history.rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
