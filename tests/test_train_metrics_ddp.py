"""Stateful metrics under torchrun (zoo/train/metrics.py): two CPU processes with gloo, each validating its half of
the split; a metric with ``sum_states`` and a torchmetrics.Metric report the F1 of the whole split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("metrics_ddp_worker.py")


@pytest.mark.ddp
@pytest.mark.slow
def test_stateful_metrics_are_over_the_whole_split_under_torchrun(tmp_path, torchrun):
    sk = pytest.importorskip("sklearn.metrics")
    torchrun(WORKER, tmp_path, timeout=180)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    reference = sk.f1_score(ranks[0]["y"].numpy(), ranks[0]["pred"].numpy(), average="macro")
    assert ranks[0]["rank_f1"] == ranks[1]["rank_f1"] != pytest.approx(reference)  # the mean of the halves' F1
    for r in ranks:
        assert r["f1"] == pytest.approx(reference)
        if r["tm"] is not None:
            assert r["tm"] == pytest.approx(reference, abs=1e-6)
