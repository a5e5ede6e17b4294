"""MobileNet V1/V2/V3: each variant's dropout and paper against its reference, and the variant numbers a user may
override.

Parameter counts and logits are in test_models_reference.py; the small-input layout in test_models_small_inputs.py.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

import zoo

TV = torchvision.models


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"])
def test_dropout_equals_torchvision(name):
    with torch.device("meta"):
        ours, theirs = zoo.create(name), getattr(TV, name)()
    dropouts = [m.p for m in theirs.classifier.modules() if isinstance(m, torch.nn.Dropout)]
    assert [ours.drop_rate] == dropouts


def test_each_version_cites_its_own_paper():
    years = {n: zoo.info(n).year for n in ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")}
    assert years == {"mobilenet_v1": 2017, "mobilenet_v2": 2018, "mobilenet_v3_small": 2019, "mobilenet_v3_large": 2019}
    assert zoo.info("mobilenet_v1").url != zoo.info("mobilenet_v2").url


def test_v3_small_head_is_1024_wide():
    model = zoo.create("mobilenet_v3_small", num_classes=7, img_size=32, drop_rate=0.0).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pre.shape == (2, model.num_features) == (2, 1024)
        assert torch.allclose(model.get_classifier()(pre), model(x))
