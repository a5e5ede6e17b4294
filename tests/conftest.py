"""Test set-up: entry-point plugins are off unless a test turns them on; tests run on few threads."""

from __future__ import annotations

import os

# Before zoo is imported anywhere: load no third-party plugin found through entry points, so the tests see
# the built-ins only. Tests that install a real plugin set ZOO_LOAD_PLUGINS themselves and call reset().
os.environ["ZOO_LOAD_PLUGINS"] = ""
os.environ.setdefault("ZOO_PROGRESS", "0")
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning made tests several times slower.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import pytest  # noqa: E402
import torch  # noqa: E402

# One intra-op thread per xdist worker: two workers on two cores beat two threads each fighting for both.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))


@pytest.fixture
def fresh_registry(monkeypatch):
    """A registry that is discovered anew for this test and again after it."""
    from zoo import registry

    registry.reset()
    yield registry
    registry.reset()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
