"""zoo.evaluate (zoo/train/evaluate.py): metrics consistent with each other and with a hand computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo

FAST = {"batch_size": 32, "progress": False}  # fit options of every tiny run here

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)


def test_evaluate_metrics_are_consistent(data, tiny):
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


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("device", ["gpu", "GPU", torch.device("cuda:0"), "cuda"])
def test_a_missing_gpu_is_one_line_whatever_its_spelling(device):
    from zoo.train.devices import resolve_device

    with pytest.raises(
        ValueError, match=r"^device '.*' asked for, but this torch sees no CUDA GPU; use 'cpu' or 'auto'$"
    ):
        resolve_device(device)
