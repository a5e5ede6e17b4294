"""MLP: the course networks (784-512-256-10, the 10-5-1 sigmoid net), options and errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_mlp_defaults():
    model = zoo.create("mlp")
    ref = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    assert n_params(model) == n_params(ref)
    assert tuple(model(torch.randn(2, 1, 28, 28)).shape) == (2, 10)


def test_mlp_course_network_10_5_1_sigmoid():
    model = zoo.create("mlp", in_features=10, hidden_sizes=(5,), num_classes=1, out_activation="sigmoid")
    ref = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 1), nn.Sigmoid())
    assert n_params(model) == n_params(ref)
    linear1, linear2 = model.fc1, model.fc2
    ref.load_state_dict(
        {"0.weight": linear1.weight, "0.bias": linear1.bias, "2.weight": linear2.weight, "2.bias": linear2.bias}
    )
    x = torch.randn(4, 10)
    out = model(x)
    assert tuple(out.shape) == (4, 1) and ((out > 0) & (out < 1)).all()
    torch.testing.assert_close(out, ref(x))


def test_mlp_learns_a_separable_problem():
    torch.manual_seed(0)
    x = torch.randn(64, 10)
    y = (x[:, 0] + x[:, 1] > 0).float().unsqueeze(1)
    model = zoo.create("mlp", in_features=10, hidden_sizes=(5,), num_classes=1, out_activation="sigmoid")
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        loss = nn.functional.binary_cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert ((model(x) > 0.5).float() == y).float().mean() > 0.9


def test_mlp_options():
    linear = zoo.create("mlp", hidden_sizes=(), img_size=8)
    assert n_params(linear) == 64 * 10 + 10
    bn = zoo.create("mlp", hidden_sizes=(16, 8), batch_norm=True, drop_rate=0.2, activation="tanh", img_size=8)
    kinds = [type(m) for m in bn.children()]
    assert kinds.count(nn.BatchNorm1d) == 2 and kinds.count(nn.Tanh) == 2 and kinds.count(nn.Dropout) == 2
    assert bn.fc1.bias is None and bn.fc3.bias is not None  # BatchNorm's shift makes the Linear bias redundant
    rgb = zoo.create("mlp", in_chans=3, img_size=32)
    assert rgb.in_features == 3 * 32 * 32


def test_mlp_errors():
    with pytest.raises(ValueError, match="unknown activation 'relu7'"):
        zoo.create("mlp", activation="relu7")
    with pytest.raises(ValueError, match="hidden_sizes must be positive"):
        zoo.create("mlp", hidden_sizes=(16, 0))
    model = zoo.create("mlp")
    with pytest.raises(ValueError, match="built for 784 input features"):
        model(torch.randn(2, 3, 28, 28))


def test_the_layers_have_the_notebooks_names():
    """784-512-256-10 as the course writes it: ``fc1``, ``fc2``, ``fc3``; its state dict loads and the logits equal."""

    class Notebook(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(784, 512), nn.Linear(512, 256), nn.Linear(256, 10)

        def forward(self, x):
            x = torch.flatten(x, 1)
            return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

    torch.manual_seed(0)
    ref, model = Notebook(), zoo.create("mlp")
    model.load_state_dict(ref.state_dict())
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(model(x), ref(x), rtol=0, atol=1e-6)
    model(x).sum().backward()
    assert model.fc1.weight.grad.shape == (512, 784)


@pytest.mark.parametrize("kwargs", [{}, {"batch_norm": True, "drop_rate": 0.1}, {"hidden_sizes": ()}])
def test_checkpoints_with_the_old_key_names_still_load(kwargs):
    """Before the rename zoo wrote one ``features`` Sequential (Flatten, Linear, [BatchNorm], act, [Dropout] per
    layer) and ``fc``: such a state dict, built here layer by layer, loads strictly and gives the same logits."""
    torch.manual_seed(0)
    model = zoo.create("mlp", img_size=8, **kwargs).eval()
    old, index = {}, 0  # the old Sequential's index of each module: Flatten at 0
    for names in model.layer_names:
        for name in names:
            index += 1
            for key, value in getattr(model, name).state_dict().items():
                old[f"features.{index}.{key}"] = value.clone()
    for key, value in model.get_classifier().state_dict().items():
        old[f"fc.{key}"] = value.clone()
    assert len(old) == len(model.state_dict())
    if "batch_norm" in kwargs:
        assert "features.2.running_mean" in old and "features.5.weight" in old  # the old layout: BN at 2, Linear 5
    fresh = zoo.create("mlp", img_size=8, **kwargs).eval()
    fresh.load_state_dict(old)
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)
    built = zoo.create("mlp", img_size=8, weights=old, **kwargs).eval()  # through the family's convert_weights
    torch.testing.assert_close(built(x), model(x), rtol=0, atol=0)
