"""GoogLeNet: the auxiliary classifiers (training-mode outputs, reset, weights that cannot fill them).

Parameter counts and logits against torchvision are in test_models_reference.py; the small-input stem in
test_models_small_inputs.py.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

import zoo

TV = torchvision.models


def test_googlenet_aux_outputs_only_in_training():
    model = zoo.create("googlenet", aux_logits=True, num_classes=4, img_size=16)
    x = torch.randn(2, 3, 16, 16)
    out = model.train()(x)
    assert type(out).__name__ == "GoogLeNetOutputs" and out._fields == ("logits", "aux_logits2", "aux_logits1")
    assert all(o.shape == (2, 4) for o in out)
    with torch.no_grad():
        logits = model.eval()(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 4)
    model.reset_classifier(6)
    assert all(o.shape == (2, 6) for o in model.train()(x))
    with torch.device("meta"):
        assert zoo.create("googlenet").aux1 is None


def test_convert_rejects_what_cannot_fit():
    """An aux-less torchvision state dict cannot fill auxiliary heads: a clear error, not a silent half-load."""
    tv = TV.googlenet(aux_logits=False, init_weights=False)
    with pytest.raises(ValueError, match="missing keys.*aux"):
        zoo.create("googlenet", aux_logits=True, weights=tv.state_dict())
