"""The CUDA paths of fit / evaluate: device placement, bf16 autocast, fp16 with the gradient scaler, checkpoints
that move between GPU and CPU. Skipped without a CUDA GPU; on a GPU machine: ``pytest -m cuda``.
(nccl DDP is in test_ddp.py: it needs two GPUs.)
"""

from __future__ import annotations

import pytest
import torch

import zoo

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

FAST = {"batch_size": 32, "progress": False, "seed": 0}


@pytest.fixture(scope="module")
def data():
    return zoo.load_dataset("synthetic", in_chans=1, img_size=16, num_classes=10, train_size=320, test_size=120)


def tiny():
    return zoo.create("lenet5", num_classes=10, in_chans=1, img_size=16)


def test_auto_trains_on_the_gpu_in_bf16_where_supported(data):
    model = tiny()
    history = zoo.fit(model, data, epochs=3, **FAST)
    assert history.device.startswith("cuda")
    assert history.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert history.last["val_accuracy"] > 0.5  # chance is 0.1
    metrics = zoo.evaluate(model, data)  # on the model's device, with the same autocast
    assert metrics["top1"] == pytest.approx(history.test["top1"], abs=0.02)  # fit scored the test split the same way


def test_fp16_with_the_gradient_scaler_checkpoints_and_resumes(data, tmp_path, stop_after):
    # a 3-epoch run stopped after epoch 2, resumed with the same options (epochs included: the one-cycle schedule
    # spans the run, so resuming with more epochs than the run started with is another matter)
    opts = dict(epochs=3, precision="fp16", clip_grad=1.0, checkpoint_dir=tmp_path, **FAST)
    history = zoo.fit(tiny(), data, callbacks=[stop_after(2)], **opts)
    assert history.precision == "fp16" and [e["epoch"] for e in history.epochs] == [1, 2]
    assert history.last["val_accuracy"] > 0.3
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["scaler"] is not None and ckpt["scaler"]["scale"] > 0
    resumed = zoo.fit(tiny(), data, resume=True, **opts)
    assert resumed.precision == "fp16"
    assert [e["epoch"] for e in resumed.epochs] == [1, 2, 3] and any("resumed" in n for n in resumed.notes)


def test_explicit_bf16_and_fp32(data):
    for precision in ("bf16", "fp32"):
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            continue
        history = zoo.fit(tiny(), data, epochs=1, precision=precision, **FAST)
        assert history.precision == precision and history.last["loss"] == history.last["loss"]  # not NaN


def test_a_gpu_checkpoint_loads_on_the_cpu(data, tmp_path):
    model = tiny()
    zoo.fit(model, data, epochs=1, checkpoint_dir=tmp_path, **FAST)
    loaded = zoo.load(tmp_path / "last.pt")
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    expected = {k: v.cpu() for k, v in model.state_dict().items()}
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


def test_compiled_model_trains_on_the_gpu(data):
    history = zoo.fit(tiny(), data, epochs=2, compile=True, **FAST)
    assert history.last["val_accuracy"] > 0.3
