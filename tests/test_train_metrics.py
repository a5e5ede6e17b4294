"""User metrics (zoo/train/metrics.py): stateful metrics (update/compute/reset, torchmetrics) are computed over the
whole split, per-batch functions averaged; every user callable is tried on the sample batch before an epoch."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from macro_f1 import MacroF1

import zoo
from zoo.train import metrics as metrics_mod
from zoo.train.devices import DistInfo
from zoo.train.metrics import StatefulMetrics

FAST = {"batch_size": 16, "progress": False}

pytestmark = pytest.mark.usefixtures("one_thread")


def batch_f1(out, y):
    """Macro-F1 of one batch: averaging it over batches is not the F1 of the split."""
    m = MacroF1(out.shape[1])
    m.update(out, y)
    return m.compute()


def problem(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 5, (n,), generator=g)
    x = torch.randn(n, 8, generator=g) + 0.8 * nn.functional.one_hot(y, 8).float()
    return x, y


def test_macro_f1_is_over_the_whole_split_as_sklearn_and_torchmetrics_compute_it():
    sk = pytest.importorskip("sklearn.metrics")
    torchmetrics = pytest.importorskip("torchmetrics")
    (x, y), (xv, yv) = problem(160, 0), problem(100, 1)
    tm = torchmetrics.F1Score(task="multiclass", num_classes=5, average="macro")
    ours = {"f1": MacroF1(5), "tm_f1": tm, "batch_f1": batch_f1}
    model = nn.Linear(8, 5)
    history = zoo.fit(model, (x, y), val=(xv, yv), epochs=2, seed=0, metrics=ours, eval_batch_size=16, **FAST)
    with torch.no_grad():
        pred = model(xv).argmax(1)
    reference = sk.f1_score(yv.numpy(), pred.numpy(), average="macro")
    assert history.last["val_f1"] == pytest.approx(reference)
    assert history.last["val_tm_f1"] == pytest.approx(reference, abs=1e-6)
    assert history.last["val_batch_f1"] != pytest.approx(reference)  # the mean over batches of 16 is something else
    m = zoo.evaluate(model, (xv, yv), metrics={"f1": MacroF1(5), "tm_f1": tm}, batch_size=16)
    assert m["f1"] == pytest.approx(reference) and m["tm_f1"] == pytest.approx(reference, abs=1e-6)


def test_a_metric_with_sum_states_is_exact_across_ranks(monkeypatch):
    sk = pytest.importorskip("sklearn.metrics")
    out, y = torch.randn(40, 5), torch.randint(0, 5, (40,))
    ours, other_rank = MacroF1(5), MacroF1(5)
    other_rank.update(out[20:], y[20:])

    def all_reduce(t, dist_info, op="sum"):  # what a second rank holding the other half would add
        return t + other_rank.confusion if t.shape == (5, 5) else t

    monkeypatch.setattr(metrics_mod, "all_reduce", all_reduce)
    pass_ = StatefulMetrics({"f1": ours}, torch.device("cpu"))
    pass_.update(out[:20], y[:20])
    value = pass_.compute(DistInfo(rank=0, world_size=2), samples=20)["f1"]
    assert value == pytest.approx(sk.f1_score(y.numpy(), out.argmax(1).numpy(), average="macro"))


class Raises:
    def __call__(self, out, y):
        raise KeyError("no such column")


@pytest.mark.parametrize(
    "options, match",
    [
        ({"metrics": {"bad": Raises()}}, "metric 'bad' failed on a sample batch: KeyError"),
        ({"metrics": {"name": lambda out, y: "good"}}, "metric 'name' returned a str"),
        ({"metrics": {"vec": lambda out, y: out.mean(1)}}, r"metric 'vec' returned 2 values \(shape \(2,\)\)"),
        ({"loss": lambda out, y: nn.functional.cross_entropy(out, y, reduction="none")}, "returned 2 values"),
        ({"loss": lambda out, y: out.sum() * float("nan")}, "returned nan"),
        ({"loss": lambda out, y: 1 / 0}, "loss=<lambda> failed on a sample batch: division by zero"),
    ],
)
def test_user_callables_are_tried_on_the_sample_batch_before_an_epoch(options, match, data, tiny):
    epochs = []

    class Count(zoo.Callback):
        def on_epoch_start(self, history, epoch):
            epochs.append(epoch)

    with pytest.raises(ValueError, match=match):
        zoo.fit(tiny(), data, epochs=1, callbacks=[Count()], **options, **FAST)
    assert epochs == []  # refused before the first epoch
    if "metrics" in options:
        with pytest.raises(ValueError, match=match.replace("fit", "evaluate")):
            zoo.evaluate(tiny(), data, metrics=options["metrics"])


def test_a_metric_undefined_on_two_samples_is_only_warned_about(data, tiny):
    with pytest.warns(UserWarning, match="metric 'nan' returned nan on a sample batch of 2"):
        history = zoo.fit(tiny(), data, epochs=1, metrics={"nan": lambda out, y: float("nan")}, **FAST)
    assert "val_nan" in history.fields


class NoReset:
    def update(self, out, y): ...

    def compute(self):
        return 0.0


@pytest.mark.parametrize(
    "metrics, match",
    [({"x": NoReset()}, "has update\\(\\) and compute\\(\\) but no reset\\(\\)"), ({"x": 3}, "'x' is a int"),
     ([batch_f1], "metrics must be a dict")],
)  # fmt: skip
def test_metrics_of_the_wrong_kind_are_refused(metrics, match, data, tiny):
    with pytest.raises(TypeError, match=match):
        zoo.fit(tiny(), data, epochs=1, metrics=metrics, **FAST)
