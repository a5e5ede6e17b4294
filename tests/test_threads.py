"""zoo chooses the intra-op thread count for the work and the machine, and the user's own choice wins."""

import pytest
import torch

import zoo
import zoo.threads as threads


@pytest.fixture
def machine(monkeypatch):
    """A machine of ``cores`` usable cores of which ``busy`` are kept busy by other work."""

    def make(cores: int, busy: float) -> None:
        monkeypatch.setattr(threads, "usable_cores", lambda: cores)
        monkeypatch.setattr(threads, "busy_cores", lambda interval=0.05: busy)

    for var in ("ZOO_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    return make


@pytest.mark.parametrize(
    ("cores", "busy", "flops", "expected"),
    [
        (2, 0.0, 5e10, 2),  # idle: every core for a real step
        (2, 1.0, 5e10, 1),  # one core busy elsewhere: never two threads that wait for each other
        (2, 3.5, 5e10, 1),  # oversubscribed
        (8, 2.2, 5e10, 6),
        (8, 0.0, 1e7, 1),  # a tiny step: one thread even on an idle machine
        (2, 0.0, 6e8, 2),  # LeNet-5 at batch 256 on an idle machine: both cores
        (8, 0.0, None, 8),  # size unknown: the free cores
    ],
)
def test_threads_follow_the_free_cores_and_the_step_size(machine, cores, busy, flops, expected):
    machine(cores, busy)
    choice = threads.choose_threads(flops)
    assert choice == expected and choice.why


def test_the_users_choice_wins(machine, monkeypatch):
    machine(8, 0.0)
    assert threads.choose_threads(5e10, requested=3) == 3
    with pytest.raises(ValueError, match=r"^threads=0: expected a positive number of threads"):
        threads.choose_threads(requested=0)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert threads.choose_threads(5e10).why == "OMP_NUM_THREADS is set"
    monkeypatch.delenv("OMP_NUM_THREADS")
    before = torch.get_num_threads()
    try:
        other = 3 if before != 3 else 2
        torch.set_num_threads(other)  # the user's own call, after zoo was imported
        assert threads.choose_threads(5e10) == other
    finally:
        torch.set_num_threads(before)


def test_a_count_zoo_used_once_is_still_the_users_choice_when_the_user_sets_it(machine):
    machine(8, 0.0)
    before = torch.get_num_threads()
    other = 3 if before != 3 else 2
    try:
        with threads.use_threads(other):  # zoo's own use of that count (the image crops' parts do this)
            pass
        assert torch.get_num_threads() == before
        assert threads.choose_threads(5e10) == 8  # zoo's choice: nothing the user set
        torch.set_num_threads(other)  # the user's own call, after zoo had used the same count
        assert threads.choose_threads(5e10) == other
        assert threads.choose_threads(5e10).why == "torch.set_num_threads was called"
    finally:
        torch.set_num_threads(before)


def test_use_threads_sets_back_what_it_found():
    before = torch.get_num_threads()
    with threads.use_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), threads.use_threads(1):
        raise RuntimeError
    assert torch.get_num_threads() == before


def test_step_flops_counts_without_changing_the_model():
    torch.manual_seed(0)
    model = zoo.create("lenet5", num_classes=10, in_chans=1, img_size=28)
    bn = torch.nn.BatchNorm1d(10)
    net = torch.nn.Sequential(model, bn).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(8, 1, 28, 28)
    rng = torch.get_rng_state()
    flops = threads.step_flops(net, x, 256)
    # LeNet-5's forward at 32 x 32 by hand (a multiply-add is 2): convolutions, then the three linear layers
    conv = 2 * (6 * 28 * 28 * 5 * 5 * 1 + 16 * 10 * 10 * 5 * 5 * 6)
    linear = 2 * (400 * 120 + 120 * 84 + 84 * 10)
    assert flops == pytest.approx(3 * 256 * (conv + linear), rel=0.01)
    assert net.training and torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_fit_records_its_threads_and_a_resumed_run_keeps_them(machine, tmp_path):
    machine(2, 0.0)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    before = torch.get_num_threads()
    history = zoo.fit(zoo.create("mlp", in_features=8, hidden_sizes=(4,), num_classes=3), (x, y), epochs=1,
                      progress=False)  # fmt: skip
    assert history.config["threads"] == 1  # a tiny step (a few kFLOP)
    assert torch.get_num_threads() == before  # set back
    model = zoo.create("mlp", in_features=8, hidden_sizes=(4,), num_classes=3)
    kw = dict(progress=False, checkpoint_dir=tmp_path, val_fraction=0.0)
    assert zoo.fit(model, (x, y), epochs=1, threads=2, **kw).config["threads"] == 2
    # resumed without threads=: the interrupted run's count, so that it computes as that run did
    assert zoo.fit(model, (x, y), epochs=2, resume=True, **kw).config["threads"] == 2
