"""fit / evaluate over the data users hold: tensors of any dtype, torch Datasets and DataLoaders, streams, any loss.

Where zoo.fit should equal a hand-written loop, the per-epoch losses of both are compared, not "loss went down".
"""

from __future__ import annotations

import copy
import struct

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from zoo.data.splitting import split_off

FAST = {"progress": False}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)


# ---------------------------------------------------------------------------------------------------------
# the course notebooks, trained by zoo.fit, equal their hand-written loops
# ---------------------------------------------------------------------------------------------------------


def test_the_mlp_notebook_trains_like_its_hand_loop():
    """nn.Sequential(Linear(10, 5), ReLU, Linear(5, 1), Sigmoid) on randn(10, 10), MSE, SGD(lr=0.01)."""
    torch.manual_seed(0)
    x, y = torch.randn(10, 10), torch.rand(10, 1)
    net = zoo.create("mlp", in_features=10, hidden_sizes=(5,), num_classes=1, out_activation="sigmoid")
    init = copy.deepcopy(net.state_dict())
    history = zoo.fit(
        net, (x, y), loss="mse", optimizer=lambda p: torch.optim.SGD(p, lr=0.01), scheduler=None, batch_size=10,
        epochs=50, **FAST,
    )  # fmt: skip
    ref = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 1), nn.Sigmoid())
    ref.load_state_dict({k.replace("fc1", "0").replace("fc2", "2"): v for k, v in init.items()})
    opt, criterion, losses = torch.optim.SGD(ref.parameters(), lr=0.01), nn.MSELoss(), []
    for _ in range(50):
        opt.zero_grad()
        loss = criterion(ref(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert history.task == "regression" and "mae" in history.fields and "accuracy" not in history.fields
    np.testing.assert_allclose(history["loss"], losses, rtol=0, atol=1e-6)
    assert losses[-1] < losses[0]  # the trajectory is a real one, not a constant


def _write_idx(path, array: np.ndarray) -> None:
    code = {np.dtype(np.uint8): 0x08}[array.dtype]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory):
    """torchvision's FashionMNIST reading IDX files written here: 96 / 48 learnable 28 x 28 images, 10 classes."""
    root = tmp_path_factory.mktemp("tv")
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    g = np.random.default_rng(0)
    for prefix, n in (("train", 96), ("t10k", 48)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        g.shuffle(labels)
        images = g.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):  # a bright bar whose place says the class
            images[i, 2 + 2 * c : 4 + 2 * c, 4:24] = 230
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def _fashion(root, train):
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
    return datasets.FashionMNIST(str(root), train=train, transform=tf, download=False)


def test_torchvision_fashion_mnist_as_a_dataloader_trains_like_the_notebook_loop(fashion_root):
    train = _fashion(fashion_root, True)
    loader = torch.utils.data.DataLoader(train, batch_size=16, shuffle=True)
    torch.manual_seed(1)
    model = zoo.create("lenet5", img_size=28)
    init = copy.deepcopy(model.state_dict())
    history = zoo.fit(
        model, loader, epochs=3, optimizer=lambda p: torch.optim.Adam(p, 1e-3), scheduler=None, label_smoothing=0,
        seed=0, channels_last=False, **FAST,
    )  # fmt: skip
    ref = zoo.create("lenet5", img_size=28)
    ref.load_state_dict(init)
    opt, losses = torch.optim.Adam(ref.parameters(), 1e-3), []
    torch.manual_seed(0)  # fit(seed=0) seeds torch the same way before its first epoch
    for _ in range(3):
        total, n = 0.0, 0
        for x, y in loader:
            opt.zero_grad()
            loss = F.cross_entropy(ref(x), y)
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(y), n + len(y)
        losses.append(total / n)
    np.testing.assert_allclose(history["loss"], losses, rtol=1e-6)
    assert model.zoo_config["inputs"]["mean"] == [0.286] and model.zoo_config["inputs"]["std"] == [0.353]
    assert model.zoo_config["inputs"]["classes"][0] == "T-shirt/top"  # read from torchvision's dataset
    metrics = zoo.evaluate(model, torch.utils.data.DataLoader(_fashion(fashion_root, False), batch_size=32))
    assert metrics.num_samples == 48 and 0 <= metrics.top1 <= 1 and len(metrics.confusion_matrix) == 10


def test_a_torch_dataset_is_wrapped_and_learns(fashion_root):
    torch.manual_seed(0)
    model = zoo.create("lenet5", img_size=28)
    test = _fashion(fashion_root, False)
    history = zoo.fit(model, _fashion(fashion_root, True), val=test, epochs=6, batch_size=16, seed=0, **FAST)
    assert history.last["val_accuracy"] > 0.5  # chance is 0.1
    assert zoo.evaluate(model, test).top1 == pytest.approx(history.last["val_accuracy"])


# ---------------------------------------------------------------------------------------------------------
# tasks and losses
# ---------------------------------------------------------------------------------------------------------


def test_bce_multilabel_reports_per_label_accuracy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, :3] > 0).float()  # three independent labels
    model = nn.Linear(8, 3)
    history = zoo.fit(model, (x, y), loss="bce", val=(x[:64], y[:64]), epochs=15, batch_size=32, lr=0.1, seed=0, **FAST)
    assert history.task == "multilabel" and history.fields[:5] == [
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
    ]
    m = zoo.evaluate(model, (x, y))
    assert m.task == "multilabel" and len(m.per_label_accuracy) == 3 and m.accuracy > 0.9
    assert m.accuracy == pytest.approx(sum(m.per_label_accuracy) / 3) and 0 < m.exact_match <= m.accuracy
    assert m.loss == pytest.approx(F.binary_cross_entropy_with_logits(model(x), y).item(), rel=1e-5)


def test_l1_regression_on_numpy_arrays_reports_mae_and_r2():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4))  # float64, as numpy makes them
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.5
    model = nn.Linear(4, 1)
    history = zoo.fit(model, (x, y), loss="l1", val_fraction=0.25, epochs=30, batch_size=32, lr=0.05, seed=0, **FAST)
    assert history.fields == ["epoch", "loss", "mae", "val_loss", "val_mae", "val_r2", "lr", "seconds", "images_per_s"]
    assert history.last["val_r2"] > 0.95
    m = zoo.evaluate(model, (x, y))
    pred = model(torch.as_tensor(x, dtype=torch.float32)).detach().squeeze(1).numpy()
    assert m.mae == pytest.approx(np.abs(pred - y).mean(), rel=1e-4) and m.loss == pytest.approx(m.mae, rel=1e-5)
    assert m.r2 == pytest.approx(1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum(), rel=1e-4)


def test_a_callable_loss_and_user_metrics():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # 3 classes

    def my_loss(out, target):
        return F.cross_entropy(out, target)

    def wrong(out, target):
        return (out.argmax(1) != target).float().mean()

    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    history = zoo.fit(model, (x, y), loss=my_loss, metrics={"error": wrong}, val=(x, y), epochs=10, seed=0, **FAST)
    assert history.task == "classification" and "val_error" in history.fields
    assert history.last["val_error"] == pytest.approx(1 - history.last["val_accuracy"])
    assert history.config["loss"] == "<test_a_callable_loss_and_user_metrics.<locals>.my_loss>"


def test_an_iterable_dataset_streams():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            g = torch.Generator().manual_seed(0)
            for _ in range(40):
                x = torch.randn(4, generator=g)
                yield x, int(x.sum() > 0)

    model = nn.Linear(4, 2)
    history = zoo.fit(model, Stream(), batch_size=8, scheduler=None, epochs=2, **FAST)
    assert len(history.epochs) == 2 and history.epochs[0]["images_per_s"] > 0
    with pytest.raises(ValueError, match="streams with no known length.*scheduler=None"):
        zoo.fit(model, Stream(), batch_size=8, epochs=1, **FAST)


# ---------------------------------------------------------------------------------------------------------
# validation: model selection never looks at the test split
# ---------------------------------------------------------------------------------------------------------


def test_a_zoo_dataset_validates_on_a_held_out_tenth_and_scores_its_test_split_once(tmp_path):
    data = zoo.load_dataset("synthetic", in_chans=1, img_size=16, train_size=200, test_size=60)
    model = zoo.create("lenet5", in_chans=1, img_size=16)
    history = zoo.fit(model, data, epochs=2, batch_size=32, seed=0, checkpoint_dir=tmp_path, **FAST)
    train, val = split_off(data.train, 0.1, 0)
    assert len(val) == 20 and torch.equal(val.labels.bincount(), torch.full((10,), 2))  # stratified
    assert history.last["val_accuracy"] == pytest.approx(zoo.evaluate(model, val).top1)
    assert history.test["num_samples"] == 60 and history.test["top1"] == pytest.approx(zoo.evaluate(model, data).top1)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["best"]["monitor"] == "val_accuracy"
    assert best["best"]["score"] == max(history["val_accuracy"])
    no_val = zoo.fit(zoo.create("lenet5", in_chans=1, img_size=16), data, epochs=1, val_fraction=0, **FAST)
    assert no_val.last["val_accuracy"] is None and no_val.test is not None


def test_evaluate_uses_the_models_normalisation_and_warns_when_the_data_differs():
    data = zoo.load_dataset("synthetic", in_chans=1, img_size=16, train_size=64, test_size=32)
    model = zoo.create("lenet5", in_chans=1, img_size=16)
    zoo.fit(model, data, epochs=1, **FAST)
    expected = zoo.evaluate(model, data)
    other = zoo.load_dataset("synthetic", in_chans=1, img_size=16, train_size=64, test_size=32)
    other.mean, other.std = (0.1,), (0.9,)
    with pytest.warns(UserWarning, match=r"differs from the one the model was trained with.*using the model's"):
        got = zoo.evaluate(model, other)
    assert got.top1 == expected.top1 and got.loss == pytest.approx(expected.loss)


def test_load_dataset_limit_is_a_stratified_seeded_subset():
    a = zoo.load_dataset("synthetic", train_size=500, test_size=100, limit=50)
    b = zoo.load_dataset("synthetic", train_size=500, test_size=100, limit=50)
    assert len(a.train) == 50 and len(a.test) == 50 and torch.equal(a.train.images, b.train.images)
    assert torch.equal(a.train.labels.bincount(), torch.full((10,), 5))
    with pytest.raises(zoo.data.DatasetOptionError, match="limit must be a positive integer"):
        zoo.load_dataset("digits", limit=0)


# ---------------------------------------------------------------------------------------------------------
# bad input: one line, what was wrong and what is accepted
# ---------------------------------------------------------------------------------------------------------


def _images(n=16, c=1, s=16):
    return torch.randint(0, 256, (n, c, s, s), dtype=torch.uint8)


BAD = [
    ("float targets, no loss", lambda: ((torch.randn(8, 4), torch.randn(8)), {}), ValueError,
     r"not class indices, so pass loss=: 'mse'"),
    ("unknown loss", lambda: ((torch.randn(8, 4), torch.randn(8)), {"loss": "mse_loss"}), ValueError,
     r"unknown loss 'mse_loss'; valid: cross_entropy, bce, mse.*did you mean 'mse'"),
    ("float targets, cross-entropy", lambda: ((torch.randn(8, 4), torch.randn(8)), {"loss": "cross_entropy"}),
     ValueError, r"needs integer class indices.*pass loss='mse'"),
    ("targets shaped unlike the output", lambda: ((torch.randn(8, 4), torch.randn(8, 3)), {"loss": "mse"}),
     ValueError, r"needs targets shaped like the model's output \(2 x 2\), got float32 targets of shape \(2, 3\)"),
    ("64 images, 10 labels", lambda: ((_images(64), torch.zeros(10, dtype=torch.long)), {}), ValueError,
     r"64 inputs but 10 targets"),
    ("label out of range", lambda: ((_images(), torch.full((16,), 12)), {}), ValueError,
     r"label 12 is outside 0\.\.9.*num_classes=13"),
    ("augment on floats", lambda: ((torch.randn(16, 1, 16, 16), torch.zeros(16, dtype=torch.long)),
                                   {"augment": True}), ValueError, r"augment=True needs uint8"),
    ("val_fraction on a DataLoader", lambda: (torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(8, 4), torch.zeros(8, dtype=torch.long))), {"val_fraction": 0.2}),
     ValueError, r"val_fraction needs data zoo can index.*pass val= instead"),
    ("a string", lambda: ("fashion-mnist", {}), TypeError, r"expected a zoo Dataset.*DataLoader; got str"),
    ("negative clip_grad", lambda: ((_images(), torch.zeros(16, dtype=torch.long)), {"clip_grad": -1}), ValueError,
     r"clip_grad must be a positive number"),
    ("grad_accum beyond an epoch", lambda: ((_images(), torch.zeros(16, dtype=torch.long)), {"grad_accum": 10**6}),
     ValueError, r"grad_accum=1000000 is more than the 1 batches of an epoch"),
    ("fractional batch size", lambda: ((_images(), torch.zeros(16, dtype=torch.long)), {"batch_size": 2.5}),
     ValueError, r"batch_size must be a positive integer, got 2\.5"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_gets_a_one_line_error(case):
    _, make, error, pattern = case
    data, options = make()
    tabular = isinstance(data, torch.utils.data.DataLoader) or (isinstance(data, tuple) and data[0].ndim == 2)
    model = nn.Linear(4, 2) if tabular else zoo.create("lenet5", in_chans=1, img_size=16)
    with pytest.raises(error, match=pattern) as info:
        zoo.fit(model, data, epochs=1, **FAST, **options)
    assert "\n" not in str(info.value)


def test_evaluate_with_a_model_that_does_not_fit_the_data_says_so():
    with pytest.raises(
        ValueError, match=r"evaluate: model 'lenet5' expects in_chans=3, img_size=16 but the data has in_chans=1"
    ):
        zoo.evaluate(zoo.create("lenet5", in_chans=3, img_size=16), (_images(), torch.zeros(16, dtype=torch.long)))
