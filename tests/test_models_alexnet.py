"""AlexNet: dropout before each hidden Linear, as torchvision's single-tower layout has it.

Parameter counts and logits are in test_models_reference.py; the small-input stem in test_models_small_inputs.py.
"""

from __future__ import annotations

import torch
import torchvision

import zoo


def _dropouts(model: torch.nn.Module) -> list[float]:
    return [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]


def test_dropout_equals_torchvision_and_follows_drop_rate():
    with torch.device("meta"):
        assert _dropouts(zoo.create("alexnet")) == _dropouts(torchvision.models.alexnet()) == [0.5, 0.5]
        assert _dropouts(zoo.create("alexnet", drop_rate=0.2)) == [0.2, 0.2]
