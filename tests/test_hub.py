"""The Hugging Face layout: ``zoo.save_pretrained`` -> ``zoo.load(folder)`` round-trips outputs and the input record;
``zoo.create("hf-hub:user/repo")`` reads a pre-populated local hub cache with ``HF_HUB_OFFLINE=1``; the card has
its front matter; bad folders and configs are refused in one line."""

from __future__ import annotations

import json
import shutil
import sys
import warnings

import pytest
import torch
from safetensors.torch import save_file

import zoo
from zoo.weights import CheckpointError


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


@pytest.fixture(scope="module")
def trained():
    """A LeNet-5 fitted a little on 28-px uint8 images with class names: it carries an input record."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=g),
        torch.randint(0, 3, (64,), generator=g),
    )
    model = zoo.create("lenet5", num_classes=3, img_size=28)
    history = zoo.fit(model, (x, y), epochs=1, batch_size=32, progress=False, device="cpu", val_fraction=0.25)
    # fit may leave the convolutions channels-last, whose kernels sum in another order: compare like with like
    return model.to(memory_format=torch.contiguous_format).eval(), history, x


def test_save_pretrained_then_load_gives_the_same_logits_and_predictions(trained, tmp_path):
    model, history, x = trained
    folder = zoo.save_pretrained(model, tmp_path / "lenet", history=history)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["lenet"]  # no temporary folder left behind
    back = zoo.load(folder)
    probe = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(back(probe), model(probe))
    assert back.zoo_config["inputs"] == model.zoo_config["inputs"]
    assert zoo.predict(back, x[:5]) == zoo.predict(model, x[:5])  # the same preprocessing, from the record
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "lenet5" and config["kwargs"] == {"num_classes": 3, "img_size": 28}
    assert config["inputs"]["input_size"] == [1, 28, 28] and config["inputs"]["num_classes"] == 3
    alone = zoo.load(folder / "model.safetensors")  # the weights file carries the config in its metadata too
    with torch.no_grad():
        assert torch.equal(alone.eval()(probe), model(probe))


def test_the_model_card_has_front_matter_and_names_architecture_and_paper(trained, tmp_path):
    model, history, _ = trained
    folder = zoo.save_pretrained(model, tmp_path / "card", history=history, license="mit", repo_id="me/lenet")
    text = (folder / "README.md").read_text()
    head, _, body = text.partition("\n---\n")
    assert text.startswith("---\n") and "library_name: zoo" in head and 'license: "mit"' in head
    assert '- "lenet"' in head and "metrics:" in head  # the family as a tag; the validation metrics
    yaml = pytest.importorskip("yaml")
    meta = yaml.safe_load(head.removeprefix("---\n"))
    assert meta["library_name"] == "zoo" and meta["license"] == "mit" and "lenet" in meta["tags"]
    assert "accuracy" in meta["metrics"]
    card = zoo.info("lenet5")
    assert "# lenet5" in body and card.paper in body and str(card.year) in body
    val = history[-1]["val_accuracy"]
    assert f"| validation | accuracy | {val:.4g} |" in body
    assert 'zoo.create("hf-hub:me/lenet")' in body and "epochs=1" in body


def test_saving_over_a_folder_replaces_the_three_files_and_keeps_the_rest(trained, tmp_path):
    model, _, _ = trained
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    (folder / "config.json").write_text("stale")
    zoo.save_pretrained(model, folder)
    assert (folder / ".gitattributes").read_text() == "*.safetensors filter=lfs\n"
    assert json.loads((folder / "config.json").read_text())["architecture"] == "lenet5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_a_bare_folder_with_an_architecture_key_loads(tmp_path):
    torch.manual_seed(0)
    model = zoo.create("mlp", num_classes=4, hidden_sizes=(8,)).eval()
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))  # no zoo metadata
    (tmp_path / "config.json").write_text(
        json.dumps({"architecture": "mlp", "model_args": {"num_classes": 4, "hidden_sizes": [8]}})
    )
    back = zoo.load(tmp_path)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "is a folder without model.safetensors"),
        ({"config.json": "[1, 2]"}, "holds a list, not a JSON object"),
        ({"config.json": "{"}, "is not JSON"),
        ({"config.json": json.dumps({"architecture": "lenet5", "kwargs": {"weights": "/etc/passwd"}})}, "names a file"),
    ],
)
def test_bad_folders_are_refused_in_one_line(tmp_path, files, message):
    if files:
        save_file(zoo.create("lenet5").state_dict(), str(tmp_path / "model.safetensors"))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(CheckpointError, match=message) as err:
        zoo.load(tmp_path)
    one_line(err.value)


def test_save_pretrained_needs_a_zoo_model(tmp_path):
    with pytest.raises(ValueError, match="needs a model made by zoo.create") as err:
        zoo.save_pretrained(torch.nn.Linear(2, 2), tmp_path / "x")
    one_line(err.value)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        zoo.save_pretrained(zoo.create("lenet5"), tmp_path / "file")


# ---- hf-hub: a local Hugging Face cache, offline -------------------------------------------------------------


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache under tmp_path, offline: nothing can be fetched."""
    pytest.importorskip("huggingface_hub", reason="huggingface_hub is not installed (pip install 'zoo[hub]')")
    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _publish(cache, repo_id: str, folder, revision: str = "0123456789abcdef0123456789abcdef01234567") -> None:
    """Lay ``folder``'s files out as huggingface_hub caches a repository: snapshots/<commit>/... and refs/main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)


def test_hf_hub_reads_the_local_cache_offline(trained, hub_cache, tmp_path):
    model, history, x = trained
    _publish(hub_cache, "me/lenet", zoo.save_pretrained(model, tmp_path / "up", history=history))
    probe = torch.randn(2, 1, 28, 28)
    for back in (zoo.create("hf-hub:me/lenet"), zoo.load("hf-hub:me/lenet")):
        with torch.no_grad():
            assert torch.equal(back.eval()(probe), model(probe))
        assert zoo.predict(back, x[:3]) == zoo.predict(model, x[:3])


def test_hf_hub_with_num_classes_trains_a_new_head(trained, hub_cache, tmp_path):
    model, _, _ = trained
    _publish(hub_cache, "me/lenet", zoo.save_pretrained(model, tmp_path / "up"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tuned = zoo.create("hf-hub:me/lenet", num_classes=7)
    assert tuned.fc3.weight.shape == (7, 84)
    assert torch.equal(tuned.conv1.weight, model.conv1.weight)
    assert tuned.zoo_config["kwargs"] == {"num_classes": 7, "img_size": 28}


def test_hf_hub_refusals_are_one_line(hub_cache):
    with pytest.raises(FileNotFoundError, match=r"'hf-hub:me/absent' is not in the Hugging Face cache") as err:
        zoo.create("hf-hub:me/absent")
    assert str(hub_cache) in one_line(err.value) and "download=True" in str(err.value)
    with pytest.raises(ValueError, match="write hf-hub:<user>/<repo>"):
        zoo.create("hf-hub:not a repo")
    with pytest.raises(TypeError, match="weights= is not accepted"):
        zoo.create("hf-hub:me/lenet", weights={})


def test_hf_hub_without_huggingface_hub_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r'pip install "zoo\[hub\]"') as err:
        zoo.create("hf-hub:me/lenet")
    one_line(err.value)


def test_the_card_of_a_fine_tuned_model_says_what_is_new(tmp_path):
    source = zoo.create("lenet5", num_classes=5).state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tuned = zoo.create("lenet5", weights=source, num_classes=3)
    folder = zoo.save_pretrained(tuned, tmp_path / "tuned")
    assert "newly initialised: fc3.weight, fc3.bias" in (folder / "README.md").read_text()
    assert zoo.load(folder).zoo_config["name"] == "lenet5"


def test_hf_hub_at_a_revision_and_download_only_when_asked(trained, hub_cache, tmp_path, monkeypatch):
    import huggingface_hub

    model, _, _ = trained
    commit = "fedcba9876543210fedcba9876543210fedcba98"
    _publish(hub_cache, "me/lenet", zoo.save_pretrained(model, tmp_path / "up"), revision=commit)
    assert zoo.create(f"hf-hub:me/lenet@{commit}").zoo_config["name"] == "lenet5"
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(hub_cache / "models--me--lenet" / "snapshots" / commit)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    zoo.create("hf-hub:me/other", download=True)
    ((repo_id, kwargs),) = calls
    assert repo_id == "me/other" and kwargs["local_files_only"] is False and kwargs["cache_dir"] == str(hub_cache)
    assert sorted(kwargs["allow_patterns"]) == ["README.md", "config.json", "model.safetensors"]
