"""Test set-up: entry-point plugins are off unless a test turns them on; tests run on few threads."""

from __future__ import annotations

import os
import signal

# Before zoo is imported anywhere: load no third-party plugin found through entry points, so the tests see
# the built-ins only. Tests that install a real plugin set ZOO_LOAD_PLUGINS themselves and call reset().
os.environ["ZOO_LOAD_PLUGINS"] = ""
os.environ.setdefault("ZOO_PROGRESS", "0")
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning made tests several times slower.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
# zoo leaves torch's thread count as the tests set it: the automatic choice follows the machine's load, and tests
# that compare runs bit for bit must not see it change between runs (tests/test_threads.py tests the choice).
os.environ.setdefault("ZOO_THREADS", "keep")

import pytest  # noqa: E402
import torch  # noqa: E402

import zoo  # noqa: E402  (after ZOO_LOAD_PLUGINS is set)

# One intra-op thread per xdist worker: two workers on two cores beat two threads each fighting for both.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))


# ---- the quick subset: `pytest -m "not slow"` -----------------------------------------------------------------
# Tests parametrized over models run the smallest variant of each family in the quick subset; the larger variants
# below are marked slow (measured: 3-140 s per test on 2 shared cores against under 1 s for the smallest). A new
# family runs in the quick subset until its larger variants are added here.
LARGER_VARIANTS = {
    *(f"densenet{n}" for n in (121, 161, 169, 201)),  # densenet_bc_100_k12 stays
    *(f"efficientnet_b{i}" for i in range(1, 8)),  # efficientnet_b0 stays
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_large",  # mobilenet_v3_small stays
    "vit_small_patch16",
    "vit_base_patch16",
    "vit_base_patch32",
    "vit_large_patch16",  # vit_tiny_patch16 stays
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",  # the zoo-resnet plugin's; resnet20 stays
}


# The export support table's cells of the larger variants (docs/export.md: 84 cells, about 8 CPU-minutes) run
# with ZOO_EXPORT_ALL=1; the full suite exports the smallest variant of each family in every format.
EXPORT_ALL = os.environ.get("ZOO_EXPORT_ALL") == "1"


def pytest_collection_modifyitems(items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("name") in LARGER_VARIANTS:
            item.add_marker(pytest.mark.slow)
            if item.module.__name__.endswith("test_export") and not EXPORT_ALL:
                item.add_marker(pytest.mark.skip(reason="a larger variant's export cell: run with ZOO_EXPORT_ALL=1"))


@pytest.fixture
def fresh_registry(monkeypatch):
    """A registry that is discovered anew for this test and again after it."""
    from zoo import plugin_manager

    plugin_manager.reset()
    yield plugin_manager
    plugin_manager.reset()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny models: they gain nothing from a second thread, and on a shared
    2-core machine two threads per process make every small op wait for a descheduled partner (measured: 0.17 s
    against 1.5-9 s per tiny epoch)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def torchrun():
    """``torchrun(script, *args, timeout=120, what="torchrun")``: run ``script`` under ``torchrun --standalone
    --nproc_per_node=2`` (gloo on the CPU unless the script picks otherwise), one thread and no plugins per rank;
    fails the test with the launch's stderr when it does not exit cleanly. Skips where torch.distributed is not
    built."""
    import subprocess
    import sys

    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available in this build")
    env = {**os.environ, "ZOO_PROGRESS": "0", "OMP_NUM_THREADS": "1", "ZOO_LOAD_PLUGINS": ""}

    def launch(script, *args, timeout: float = 120, what: str = "torchrun") -> None:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
        proc = subprocess.run([*cmd, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"

    return launch


@pytest.fixture
def states_equal():
    """``states_equal(a, b)``: two models hold bit-equal weights and buffers."""

    def equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
        sa, sb = a.state_dict(), b.state_dict()
        return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)

    return equal


@pytest.fixture
def isolated_data(monkeypatch, tmp_path):
    """No real cache, no $ZOO_DATA, no system datasets and no download unless a test sets them."""
    from zoo.data import sources

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv(sources.ENV_DATA, raising=False)
    monkeypatch.delenv(sources.ENV_DOWNLOAD, raising=False)
    monkeypatch.setattr(sources, "SYSTEM_DATA_DIR", tmp_path / "system")

    def no_download(spec):
        raise AssertionError(f"a download of {spec.name} was attempted")

    monkeypatch.setattr(sources, "download", no_download)


class StopAfter(zoo.Callback):
    """A callback that stops the run after ``epoch``: a run killed there, as far as its checkpoints go."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, history, record):
        if record["epoch"] == self.epoch:
            history.request_stop("simulated kill")


class SignalAt:
    """A forward pre-hook that sends ``signum`` to this process at the ``at``-th training forward."""

    def __init__(self, at: int, signum: int = signal.SIGINT):
        self.signum, self.at, self.calls = signum, at, 0

    def __call__(self, module, args):
        if module.training:
            self.calls += 1
            if self.calls == self.at:
                os.kill(os.getpid(), self.signum)


@pytest.fixture
def signal_at():
    """``signal_at(at, signum=SIGINT)``: a forward pre-hook that signals this process at the ``at``-th training
    forward, as a Ctrl-C or a scheduler's SIGTERM there would."""
    return SignalAt


@pytest.fixture
def stop_after():
    """``stop_after(epoch)``: a callback that stops the run after that epoch, as a kill there would."""
    return StopAfter


# ---- the engine's tiny learnable problem (test_train_*.py) --------------------------------------------------


@pytest.fixture(scope="module")
def data():
    """320 + 120 synthetic 1x16x16 images of 10 classes: learnable in a few tiny epochs. A test module that needs
    other data defines its own ``data`` fixture, which takes precedence."""
    return zoo.load_dataset("synthetic", in_chans=1, img_size=16, num_classes=10, train_size=320, test_size=120)


@pytest.fixture
def tiny():
    """``tiny(num_classes=10, in_chans=1, drop_rate=0.0)``: LeNet-5 at 16 px, the engine tests' model."""

    def make(num_classes=10, in_chans=1, drop_rate=0.0):
        return zoo.create("lenet5", num_classes=num_classes, in_chans=in_chans, img_size=16, drop_rate=drop_rate)

    return make
