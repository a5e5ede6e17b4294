"""Checkpoints from other libraries: a Lightning ``.ckpt`` (trained by Lightning's own Trainer when lightning is
installed, else written by hand in the same layout) and a Hugging Face folder given by its ``model.safetensors``."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import zoo
from zoo.foreign import strip_owner_prefix
from zoo.weights import CheckpointError

X = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))


def _lightning_ckpt(tmp_path):
    """A zoo LeNet-5 trained 2 steps inside a LightningModule (as ``self.net``, beside a weighted loss)."""
    L = pytest.importorskip("lightning")

    class Lit(L.LightningModule):
        def __init__(self, lr: float = 0.05):
            super().__init__()
            self.save_hyperparameters()
            self.net = zoo.create("lenet5", num_classes=3)
            self.loss = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 1.0]))  # a buffer beside the net

        def training_step(self, batch, _):
            x, y = batch
            return self.loss(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    data = torch.utils.data.TensorDataset(torch.randn(16, 1, 32, 32), torch.randint(0, 3, (16,)))
    module = Lit()
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    trainer = L.Trainer(
        max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=8))
    path = tmp_path / "lit.ckpt"
    trainer.save_checkpoint(path)
    net = module.net.eval()
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())  # it trained
    return path, net


def test_a_lightning_checkpoint_loads_into_zoo_load_and_create(tmp_path):
    path, net = _lightning_ckpt(tmp_path)
    raw = torch.load(path, weights_only=True)  # Lightning's layout, readable without unpickling code
    assert "pytorch-lightning_version" in raw and "loss.weight" in raw["state_dict"]
    expected = net(X)
    loaded = zoo.load(path, model=zoo.create("lenet5", num_classes=3))
    assert torch.equal(loaded(X), expected)
    created = zoo.create("lenet5", num_classes=3, weights=path).eval()
    assert torch.equal(created(X), expected)


def test_a_lightning_checkpoint_without_model_says_what_to_do(tmp_path):
    path = tmp_path / "hand.ckpt"  # the same layout, written by hand (no lightning needed)
    net = zoo.create("lenet5", num_classes=3).eval()
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    ckpt = {"epoch": 1, "global_step": 2, "pytorch-lightning_version": "2.6.0", "state_dict": state}
    torch.save({**ckpt, "optimizer_states": [], "hyper_parameters": {"lr": 0.1}}, path)
    with pytest.raises(CheckpointError, match="does not say which model it holds.*zoo.load\\(path, model=model\\)"):
        zoo.load(path)
    assert torch.equal(zoo.load(path, model=zoo.create("lenet5", num_classes=3))(X), net(X))


def test_a_checkpoint_holding_pickled_objects_is_refused_saying_which(tmp_path):
    import argparse

    path = tmp_path / "args.ckpt"  # timm's train.py and some LightningModules keep an argparse.Namespace
    state = {f"net.{k}": v for k, v in zoo.create("lenet5").state_dict().items()}
    torch.save({"epoch": 1, "state_dict": state, "hyper_parameters": {"args": argparse.Namespace(lr=0.1)}}, path)
    with pytest.raises(CheckpointError, match="holds a pickled argparse.Namespace.*pickled code never runs"):
        zoo.load(path, model=zoo.create("lenet5"))


def test_the_owner_prefix_is_the_one_that_fits_exactly():
    own = {"fc.weight", "fc.bias"}
    state = {"model.fc.weight": 1, "model.fc.bias": 2, "ema.model.fc.weight": 3, "ema.model.fc.bias": 4, "w": 5}
    assert strip_owner_prefix(state, own) == {"fc.weight": 1, "fc.bias": 2}  # the outermost fitting prefix
    assert strip_owner_prefix({"fc.weight": 1, "fc.bias": 2}, own) == {"fc.weight": 1, "fc.bias": 2}
    partial = {"model.fc.weight": 1}  # no prefix gives every key: left as is, for the caller's one-line error
    assert strip_owner_prefix(partial, own) is partial


def test_a_foreign_checkpoint_that_does_not_fit_is_one_line(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"epoch": 0, "state_dict": {"net.conv.weight": torch.zeros(2, 1, 3, 3)}}, path)
    with pytest.raises(CheckpointError, match="do not fit this model"):
        zoo.load(path, model=zoo.create("lenet5"))
    with pytest.raises(ValueError, match="weights do not fit 'lenet5'"):
        zoo.create("lenet5", weights=path)


def test_a_folders_model_safetensors_loads_without_model(tmp_path):
    model = zoo.create("lenet5", num_classes=3).eval()
    zoo.save_pretrained(model, tmp_path / "hf")
    weights = tmp_path / "hf" / "model.safetensors"
    # the weights file alone, its zoo metadata gone (as another library writes it): config.json says which model
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(weights)), str(weights))
    loaded = zoo.load(weights)
    assert loaded.zoo_config["name"] == "lenet5" and torch.equal(loaded(X), model(X))


def test_a_timm_folder_loads_without_model(tmp_path):
    timm = pytest.importorskip("timm")
    from timm.models import save_for_hf

    model = timm.create_model("resnet18", num_classes=5, pretrained=False).eval()
    save_for_hf(model, str(tmp_path / "r18"), safe_serialization=True)
    config = json.loads((tmp_path / "r18" / "config.json").read_text())
    assert config["architecture"] == "resnet18" and "pretrained_cfg" in config  # timm's own layout
    x = torch.randn(2, 3, 64, 64)
    loaded = zoo.load(tmp_path / "r18")
    assert torch.equal(loaded(x), model(x))


# ---------------------------------------------------------------------------------------------------------
# timm's pretrained tags, offline first (nothing is downloaded here: the download functions refuse to run)
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def offline_caches(tmp_path, monkeypatch):
    """Empty Hugging Face and torch hub caches in ``tmp_path``; any download attempt fails the test."""
    hf = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    real = hf.snapshot_download

    def local_only(*args, **kwargs):
        assert kwargs.get("local_files_only"), "a download was attempted"
        return real(*args, **kwargs)

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(hf, "snapshot_download", local_only)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return tmp_path / "hf"


def _put_in_hf_cache(cache, repo_id: str, state: dict) -> None:
    """``state`` as ``model.safetensors`` where huggingface_hub keeps ``repo_id``'s main revision."""
    from safetensors.torch import save_file

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "snapshots" / commit / "model.safetensors"))


def test_timm_tags_resolve_offline_first(offline_caches):
    timm = pytest.importorskip("timm")
    with pytest.raises(FileNotFoundError, match=r"timm weights resnet18.a1_in1k are not in any cache.*download=True"):
        zoo.create("timm/resnet18", weights="a1_in1k")
    source = timm.create_model("resnet18", pretrained=False).eval()
    _put_in_hf_cache(offline_caches, "timm/resnet18.a1_in1k", source.state_dict())
    x = torch.randn(2, 3, 64, 64)
    model = zoo.create("timm/resnet18", weights="a1_in1k").eval()
    assert torch.equal(model(x), source(x))
    expected = timm.models.get_pretrained_cfg("resnet18.a1_in1k")  # timm's preprocessing for these weights
    assert model.pretrained_cfg["crop_pct"] == expected.crop_pct and model.pretrained_cfg["mean"] == expected.mean
    assert model.zoo_config["weights"] == "timm/resnet18.a1_in1k"
    tagged = zoo.create("timm/resnet18.a1_in1k", weights="DEFAULT").eval()  # the tag in the name
    assert torch.equal(tagged(x), source(x))
    with pytest.warns(UserWarning, match="new head: fc.weight, fc.bias"):  # a new head, the same trunk
        head5 = zoo.create("timm/resnet18", weights="a1_in1k", num_classes=5).eval()
    assert torch.equal(head5.forward_features(x), source.forward_features(x))


def test_an_unknown_timm_tag_lists_the_tags(offline_caches):
    pytest.importorskip("timm")
    with pytest.raises(
        ValueError, match=r"timm/resnet18 has no pretrained weights tagged 'a9_in1k'; its tags: .*a1_in1k"
    ):
        zoo.create("timm/resnet18", weights="a9_in1k")
    with pytest.raises(FileNotFoundError, match="weights file 'nothing/here.pt' does not exist"):
        zoo.create("timm/resnet18", weights="nothing/here.pt")  # a path stays a path
