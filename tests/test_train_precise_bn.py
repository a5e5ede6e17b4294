"""Precise BatchNorm statistics (zoo/train/precise_bn.py): a short run of a slow-momentum BN model is evaluated
with statistics of its final weights, the training itself is untouched, and long runs are left as they are."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.train import precise_bn

FAST = {"batch_size": 32, "progress": False}  # fit options of every tiny run here

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)


def slow_bn_net(momentum=0.01):
    """Conv -> BN (torchvision MobileNetV3's momentum 0.01) -> ReLU -> pool -> Linear, for 1x16x16 images."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8, momentum=momentum), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, 10),
    )  # fmt: skip


def test_young_statistics_are_recomputed_and_training_is_untouched(data):
    runs = {}
    for mode in (False, None):
        model = slow_bn_net()
        history = zoo.fit(model, data, epochs=2, seed=0, precise_bn=mode, **FAST)
        runs[mode] = (model, history)
    (plain, h_plain), (precise, h_precise) = runs[False], runs[None]
    # the weights are those of the same training: only the running statistics differ
    for (name, a), b in zip(plain.named_parameters(), precise.parameters(), strict=True):
        assert torch.equal(a, b), name
    assert [e["loss"] for e in h_plain.epochs] == [e["loss"] for e in h_precise.epochs]
    assert any("precise_bn" in n for n in h_precise.notes) and not any("precise_bn" in n for n in h_plain.notes)
    # the recomputed statistics are the plain average over the training batches, with the final weights
    bn = precise[1]
    x = (data.train.images.float() / 255 - data.mean[0]) / data.std[0]
    with torch.no_grad():
        features = precise[0](x)
    # fit validates on a held-out 10%: the statistics come from the other 90%, so compare with tolerance
    var = features.var((0, 2, 3))
    assert torch.allclose(bn.running_var, var, rtol=0.1)
    assert not torch.allclose(plain[1].running_var, var, rtol=0.1)  # young running averages lag far behind


def test_grown_up_statistics_are_left_alone():
    norms = precise_bn.batch_norms(slow_bn_net(momentum=0.1))
    assert precise_bn.young(norms, 40) and not precise_bn.young(norms, 50)  # 0.9**44 = 1%
    assert not precise_bn.young(precise_bn.batch_norms(slow_bn_net(momentum=None)), 0)


def test_recompute_keeps_the_random_generators_and_skips_single_samples():
    model = slow_bn_net()
    before = torch.get_rng_state()
    batches = [(torch.randn(1, 1, 16, 16), None), (torch.randn(4, 1, 16, 16), None)]
    state = torch.get_rng_state()
    assert precise_bn.recompute(model, batches, None) == 1
    assert torch.equal(torch.get_rng_state(), state) and not torch.equal(before, state)
    assert model[1].momentum == 0.01 and model.training
    stats = model[1].running_mean.clone()
    assert precise_bn.recompute(model, [], None) == 0  # nothing seen: the statistics as they were
    assert torch.equal(model[1].running_mean, stats)
