"""DenseNet: torchvision's legacy checkpoint keys, memory-efficient checkpointing, the head interface.

Parameter counts and logits against torchvision (and the CIFAR DenseNet-BC against torchvision's DenseNet class)
are in test_models_reference.py; the small-input stem in test_models_small_inputs.py.
"""

from __future__ import annotations

import re

import pytest
import torch
import torchvision

import zoo
from zoo.models import densenet as zoo_densenet

TV = torchvision.models


def test_densenet_legacy_torchvision_keys():
    """torchvision's published DenseNet checkpoints use 'denselayer1.norm.1.weight'; they load too."""
    tv = TV.DenseNet(growth_rate=4, block_config=(2, 2, 2, 2), num_init_features=8, num_classes=3)
    legacy = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v for k, v in tv.state_dict().items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    converted = zoo_densenet.convert_weights(legacy)
    assert converted.keys() == tv.state_dict().keys()
    model = zoo_densenet.DenseNet(4, (2, 2, 2, 2), 8, num_classes=3, img_size=64)
    model.load_state_dict(converted)  # strict: every key and shape fits


def test_densenet_memory_efficient_same_gradients():
    torch.manual_seed(0)
    plain = zoo_densenet.DenseNet(4, (3, 3), 8, num_classes=3, img_size=8).train()
    efficient = zoo_densenet.DenseNet(4, (3, 3), 8, num_classes=3, img_size=8, memory_efficient=True).train()
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 8, 8)
    plain(x).sum().backward()
    efficient(x).sum().backward()
    for (n, p), q in zip(plain.named_parameters(), efficient.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), n


@pytest.mark.parametrize("name", ["alexnet", "googlenet", "densenet_bc_100_k12"])
def test_head_interface(name):
    model = zoo.create(name, img_size=28, in_chans=1, num_classes=3, drop_rate=0.3).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.ndim == 4
        assert torch.allclose(model.forward_head(feats), model(x))
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
        assert model.get_classifier().out_features == 3
        model.reset_classifier(0)
        assert model(x).shape == (2, model.num_features)
