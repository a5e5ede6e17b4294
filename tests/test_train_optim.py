"""Optimizers (zoo/train/optim.py): the fused kernels step like the unfused ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_fused_optimizer_steps_like_the_unfused_one(name, tiny):
    from zoo.train import optim

    torch.manual_seed(0)
    a, b = tiny(), tiny()
    b.load_state_dict(a.state_dict())
    fused = optim.make_optimizer(name, a, 1e-2, 5e-4)
    assert fused.defaults.get("fused") is True  # CPU float parameters: fused by default
    options = {k: v for k, v in fused.defaults.items() if k not in ("fused", "foreach", "decoupled_weight_decay")}
    plain = type(fused)(optim.param_groups(b, 5e-4), **options, foreach=False)
    x, y = torch.randn(16, 1, 16, 16), torch.randint(0, 10, (16,))
    for _ in range(5):
        for model, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        # the fused kernel orders its float ops differently: equal to ~1e-5 after 5 steps, not bit for bit
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=5e-5)
