"""LeNet-5: the paper's 32x32 field at 28 px, pooling before the activation, non-square inputs.

The reference is the classic course network (d2l's LeNet-5 on 28x28 Fashion-MNIST: the first convolution pads by
2), written here with torch primitives in the textbook order conv -> activation -> pool.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo


def reference_lenet(in_chans: int = 1, pad: int = 2) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chans, 6, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )  # fmt: skip


def copy_into_reference(model: nn.Module, ref: nn.Sequential) -> None:
    ours = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    theirs = [m for m in ref.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        b.load_state_dict(a.state_dict())


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("in_chans", [1, 3])
def test_28px_input_is_padded_to_the_papers_field_with_the_papers_count(in_chans):
    model = zoo.create("lenet5", in_chans=in_chans, img_size=28)
    ref = reference_lenet(in_chans)
    assert n_params(model) == n_params(ref) == n_params(zoo.create("lenet5", in_chans=in_chans))
    copy_into_reference(model, ref)
    x = torch.randn(4, in_chans, 28, 28)
    torch.testing.assert_close(model(x), ref(x), rtol=0, atol=1e-6)
    # and it is the 32 px network looking at the digit centred in a 32x32 field of zeros
    full = zoo.create("lenet5", in_chans=in_chans, img_size=32)
    full.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(x), full(F.pad(x, (2, 2, 2, 2))), rtol=0, atol=1e-6)


def test_pooling_before_relu_gives_the_textbook_outputs_and_gradients():
    torch.manual_seed(0)
    model = zoo.create("lenet5", img_size=28)
    ref = reference_lenet()
    copy_into_reference(model, ref)
    assert isinstance(model.feature_stages()[0][1], nn.MaxPool2d)  # pooled first: the ReLU sees a quarter of the values
    x = torch.randn(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))
    F.cross_entropy(model(x), y).backward()
    F.cross_entropy(ref(x), y).backward()
    ours = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    theirs = [m for m in ref.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a.weight.grad, b.weight.grad, rtol=0, atol=1e-6)


def test_the_papers_tanh_and_average_pooling_keep_the_activation_before_the_pool():
    model = zoo.create("lenet5", activation="tanh", pool="avg")
    assert [type(m) for m in model.feature_stages()[0]] == [nn.Conv2d, nn.Tanh, nn.AvgPool2d]


def test_pad_input_false_keeps_the_smaller_maps():
    model = zoo.create("lenet5", img_size=28, pad_input=False)
    ref = reference_lenet(pad=0)
    ref[7] = nn.Linear(16 * 4 * 4, 120)
    assert model.flat_features == 16 * 4 * 4 and n_params(model) == n_params(ref)
    copy_into_reference(model, ref)
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(model(x), ref(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("pad_input", [True, False])
@pytest.mark.parametrize("img_size", [(28, 32), (29, 40), (48, 20)])
def test_non_square_inputs(img_size, pad_input):
    model = zoo.create("lenet5", in_chans=3, img_size=img_size, pad_input=pad_input)
    out = model(torch.randn(2, 3, *img_size))
    assert out.shape == (2, 10)
    out.sum().backward()


class BlitzNet(nn.Module):
    """The convnet of PyTorch's "Deep Learning with PyTorch: A 60 Minute Blitz" (neural_networks_tutorial)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def test_the_tutorials_layer_names_and_its_autograd_lesson():
    """The blitz's state dict loads as it is, the logits are equal, and ``net.conv1.bias.grad`` is there."""
    torch.manual_seed(0)
    blitz, net = BlitzNet(), zoo.create("lenet5")
    assert net.state_dict().keys() == blitz.state_dict().keys()
    net.load_state_dict(blitz.state_dict())
    x = torch.randn(1, 1, 32, 32)
    torch.testing.assert_close(net(x), blitz(x), rtol=0, atol=1e-6)
    net.zero_grad()
    net(x).backward(torch.randn(1, 10))
    assert net.conv1.bias.grad.shape == (6,)


def test_checkpoints_with_the_old_key_names_still_load():
    """zoo wrote ``features.0`` / ``features.3`` / ``head.1`` / ``head.4`` / ``fc`` before the rename."""
    torch.manual_seed(0)
    net = zoo.create("lenet5", img_size=28)
    old_names = {"conv1": "features.0", "conv2": "features.3", "fc1": "head.1", "fc2": "head.4", "fc3": "fc"}
    old = {}
    for key, value in net.state_dict().items():
        layer, param = key.split(".")
        old[f"{old_names[layer]}.{param}"] = value.clone()
    fresh = zoo.create("lenet5", img_size=28)
    fresh.load_state_dict(old)  # strict: every old key found its layer
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(fresh(x), net(x), rtol=0, atol=0)
    wrapped = nn.Sequential(zoo.create("lenet5", img_size=28))  # under a prefix too
    wrapped.load_state_dict({f"0.{k}": v for k, v in old.items()})
    torch.testing.assert_close(wrapped(x), net(x), rtol=0, atol=0)
    built = zoo.create("lenet5", img_size=28, weights=old)  # and through the family's convert_weights
    torch.testing.assert_close(built(x), net(x), rtol=0, atol=0)
