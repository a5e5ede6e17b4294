"""EfficientNet: each variant's numbers (width, depth, resolution, dropout, batch-norm settings) against torchvision's.

Parameter counts and logits are in test_models_reference.py; the small-input layout in test_models_small_inputs.py.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

import zoo

TV = torchvision.models
VARIANTS = [f"efficientnet_b{i}" for i in range(8)]


def _batch_norms(model: torch.nn.Module) -> set[tuple[float, float]]:
    return {(m.eps, m.momentum) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_numbers_equal_torchvision(name):
    """Dropout before the classifier and batch-norm eps/momentum (TensorFlow's for B5-B7). The default resolution
    is the paper's (torchvision's weights evaluate some variants at other sizes, e.g. B2 at 288 px)."""
    with torch.device("meta"):
        ours, theirs = zoo.create(name), getattr(TV, name)()
    assert ours.drop_rate == theirs.classifier[0].p
    assert _batch_norms(ours) == _batch_norms(theirs)


def test_user_keywords_override_the_variant_numbers():
    with torch.device("meta"):
        model = zoo.create("efficientnet_b1", drop_rate=0.0, width_mult=0.5)
        narrow = zoo.create("efficientnet_b0", width_mult=0.5)
    assert model.drop_rate == 0.0
    assert model.features[0][0].out_channels == narrow.features[0][0].out_channels == 16
