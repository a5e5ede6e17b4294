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
    linear1, linear2 = model.features[1], model.fc
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
    kinds = [type(m) for m in bn.features]
    assert kinds.count(nn.BatchNorm1d) == 2 and kinds.count(nn.Tanh) == 2 and kinds.count(nn.Dropout) == 2
    assert bn.features[1].bias is None  # BatchNorm's shift makes the Linear bias redundant
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
