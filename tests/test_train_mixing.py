"""Soft targets and MixUp/CutMix (zoo/train/tasks.py, zoo/train/mixing.py): torchvision's v2.CutMix/MixUp batches
train with every accepted classification loss; fit's own mixup=/cutmix= match timm's targets, are seeded and resume
bit-equal; accuracy is read against the hard labels."""

from __future__ import annotations

import random
import signal

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from zoo.train import mixing
from zoo.train.mixing import Mixer
from zoo.train.tasks import resolve_task

FAST = {"batch_size": 16, "progress": False}

pytestmark = pytest.mark.usefixtures("one_thread")


def tensors(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)


def mixed_loader(transform, n=64):
    x, y = tensors(n)
    collate = lambda batch: transform(*torch.utils.data.default_collate(batch))  # noqa: E731
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, collate_fn=collate)


@pytest.mark.parametrize("transform", ["CutMix", "MixUp"])
@pytest.mark.parametrize(
    "loss", [None, "cross_entropy", nn.CrossEntropyLoss(), nn.CrossEntropyLoss(label_smoothing=0.1)],
    ids=["default", "name", "module", "module-smoothed"],
)  # fmt: skip
def test_torchvision_mixed_batches_train_with_each_classification_loss(transform, loss, tiny):
    v2 = pytest.importorskip("torchvision.transforms.v2")
    loader = mixed_loader(getattr(v2, transform)(num_classes=10))
    x, y = next(iter(loader))
    assert y.shape == (16, 10) and y.is_floating_point()  # probability targets, as torchvision makes them
    history = zoo.fit(tiny(), loader, val=tensors(32, seed=1), epochs=1, seed=0, loss=loss, **FAST)
    assert history.task == "classification"
    assert 0 <= history.last["accuracy"] <= 1 and history.last["val_accuracy"] is not None


def test_accuracy_on_probability_targets_is_against_their_largest_class(tiny):
    out, y = torch.randn(8, 10), F.softmax(torch.randn(8, 10), 1)
    task = resolve_task(None, 0.1, out, y)
    assert task.kind == "classification" and task.loss_name == "cross_entropy"
    assert int(task.train_stat(out, y)) == int((out.argmax(1) == y.argmax(1)).sum())
    with pytest.raises(ValueError, match="probability rows"):
        resolve_task("cross_entropy", 0.0, out, y * 2)  # rows summing to 2 are not probabilities


def test_label_smoothing_composes_with_mixed_targets_as_timm_does():
    timm_mixup = pytest.importorskip("timm.data.mixup")
    from timm.loss import SoftTargetCrossEntropy

    out, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    task = resolve_task(None, 0.1, out, y)
    lam = 0.7
    ours = task.train_loss(out, Mixer(0.2, None, 1.0, 0.5, 5).targets(y, lam))
    reference = SoftTargetCrossEntropy()(out, timm_mixup.mixup_target(y, 5, lam, smoothing=0.1))
    torch.testing.assert_close(ours, reference)


def test_mixup_blends_with_the_reversed_batch_by_a_seeded_beta_draw():
    x, y = tensors(8)
    random.seed(3)
    mixed, target = Mixer(0.4, None, 1.0, 0.5, 10)(x, y)
    random.seed(3)
    lam = random.betavariate(0.4, 0.4)  # the reference draw
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x.flip(0))
    torch.testing.assert_close(target, lam * F.one_hot(y, 10).float() + (1 - lam) * F.one_hot(y.flip(0), 10).float())


def test_cutmix_targets_weigh_each_image_by_the_pixels_it_keeps():
    n = 6
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 16, 16)  # image i is all i
    y = torch.arange(n)  # distinct labels: a target row shows the weight of each image
    random.seed(0)
    for _ in range(5):
        mixed, target = Mixer(None, 1.0, 1.0, 0.5, n)(x, y)
        for i in range(n):
            kept = float((mixed[i] == i).float().mean())
            assert target[i, i].item() == pytest.approx(kept)
            assert target[i, n - 1 - i].item() == pytest.approx(1 - kept)
    assert x.unique().tolist() == list(range(n))  # the data's tensor is not written into


def test_training_accuracy_with_mixup_is_read_against_the_hard_labels(monkeypatch):
    # features that name the class and a fixed identity model: the model is right on every unmixed sample
    y = torch.arange(64) % 10
    x = 10.0 * F.one_hot(y, 10).float()
    model = nn.Linear(10, 10, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(10))
    seen = []
    call = Mixer.__call__

    def spy(self, xb, yb):
        mixed, target = call(self, xb, yb)
        seen.append((mixed, yb))
        return mixed, target

    monkeypatch.setattr(Mixer, "__call__", spy)
    opts = dict(epochs=1, seed=0, mixup=1.0, scheduler=None, optimizer=lambda p: torch.optim.SGD(p, lr=0.0))
    history = zoo.fit(model, (x, y), **opts, batch_size=8, progress=False)
    expected = sum(int((model(m).argmax(1) == h).sum()) for m, h in seen) / sum(len(h) for _, h in seen)
    assert len(seen) == 8 and history.last["accuracy"] == pytest.approx(expected)
    assert expected < 1.0  # against the mixed targets' largest class it would be 1.0


def test_mixing_is_seeded_and_resumes_bit_equal(data, tmp_path, tiny, states_equal, signal_at):
    opts = dict(epochs=2, seed=0, mixup=0.8, cutmix=1.0, mixup_prob=0.8, batch_size=32, progress=False)
    torch.manual_seed(0)
    a = tiny()
    hook = a.register_forward_pre_hook(signal_at(13, signal.SIGINT))  # mid epoch 2 (9 batches per epoch)
    assert zoo.fit(a, data, checkpoint_dir=tmp_path, **opts).interrupted
    hook.remove()
    zoo.fit(a, data, checkpoint_dir=tmp_path, resume=True, **opts)
    torch.manual_seed(0)
    b = tiny()
    zoo.fit(b, data, **opts)
    assert states_equal(a, b)
    torch.manual_seed(0)
    plain = tiny()
    zoo.fit(plain, data, **{**opts, "mixup": None, "cutmix": None})
    assert not states_equal(plain, b)  # mixing did change the training


@pytest.mark.parametrize(
    "options, match",
    [
        ({"mixup": 0}, "mixup must be a positive Beta alpha"),
        ({"cutmix": "yes"}, "cutmix must be a positive Beta alpha"),
        ({"mixup": 0.2, "mixup_prob": 1.5}, r"mixup_prob must be a probability in \[0, 1\]"),
        ({"mixup": 0.2, "loss": "mse"}, "mix class targets; this run's task is regression"),
        ({"mixup": 0.2, "loss": nn.NLLLoss()}, "on mixed .* probability targets"),
    ],
)
def test_bad_mixing_options_are_one_line_errors(options, match, tiny):
    x, y = tensors(32)
    if options.get("loss") == "mse":
        y = y.float()
        model = nn.Sequential(nn.Flatten(), nn.Linear(256, 1))
    else:
        model = tiny()
    with pytest.raises(ValueError, match=match):
        zoo.fit(model, (x, y), epochs=1, **options, **FAST)


def test_cutmix_needs_images():
    x, y = torch.randn(32, 8), torch.arange(32) % 4
    with pytest.raises(ValueError, match="cutmix= pastes boxes into N x C x H x W images"):
        zoo.fit(nn.Linear(8, 4), (x, y), epochs=1, cutmix=1.0, **FAST)
    assert mixing.make_mixer(None, None, 1.0, 0.5, "classification", 4, x) is None
