"""Weight tags: records registered through the hook, resolved offline first, sha256-checked, loaded with their inputs.

The weight files here are written by the tests (a seeded model's state dict), so every expected value comes from
that state dict, never from the code under test.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import zoo
from zoo import registry
from zoo.pretrained import UnknownWeightsError, WeightsHashError, tv_tag
from zoo.testing import check_architecture

INPUTS = {
    "input_size": [1, 28, 28],
    "input_dtype": "uint8",
    "mean": [0.25],
    "std": [0.5],
    "classes": [f"c{i}" for i in range(10)],
    "num_classes": 10,
    "task": "classification",
    "dataset": "toy",
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def isolated_caches(monkeypatch, tmp_path):
    """Empty caches ($ZOO_HOME, XDG, torch hub) and no download unless a test allows it."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo-home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


@pytest.fixture
def toy_package(monkeypatch, tmp_path):
    """An importable package ``toy_weights`` shipping a LeNet-5 state dict at 28 px; returns (state, file path)."""
    pkg = tmp_path / "site" / "toy_weights"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    torch.manual_seed(1)
    state = zoo.create("lenet5", img_size=28).state_dict()
    path = pkg / "lenet5_toy.safetensors"
    save_file(state, str(path))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield state, path
    sys.modules.pop("toy_weights", None)


class WeightsPlugin:
    """An in-process plugin whose register_weights registers ``entries`` (model, tag, fields)."""

    def __init__(self, *entries):
        self.entries = entries

    @zoo.hookimpl
    def register_weights(self, register):
        for model, tag, fields in self.entries:
            register(model, tag, **fields)


def toy_fields(path: Path, **extra) -> dict:
    fields = dict(file=path.name, package="toy_weights", sha256=sha256(path), size=path.stat().st_size,
                  inputs=INPUTS, metrics={"top1": 50.0, "split": "test"}, dataset="toy", licence="MIT",
                  recipe="written by tests/test_pretrained.py", kwargs={"img_size": 28})  # fmt: skip
    fields.update(extra)
    return fields


@pytest.fixture
def toy(fresh_registry, toy_package, isolated_caches):
    state, path = toy_package
    zoo.register_plugin(WeightsPlugin(("lenet5", "toy", toy_fields(path))), name="toy_plugin")
    return state, path


def test_a_tag_resolves_hash_checks_and_loads_the_registered_state(toy):
    state, _ = toy
    for model in (zoo.create("lenet5.toy"), zoo.create("lenet5", weights="toy")):
        got = model.state_dict()
        assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)
        assert model.zoo_config["name"] == "lenet5" and model.zoo_config["kwargs"] == {"img_size": 28}
        assert model.zoo_config["inputs"]["mean"] == INPUTS["mean"]
        assert model.zoo_config["inputs"]["input_size"] == INPUTS["input_size"]
        cfg = model.pretrained_cfg
        assert cfg["input_size"] == (1, 28, 28) and cfg["mean"] == (0.25,) and cfg["std"] == (0.5,)
        assert cfg["weights"] == "lenet5.toy" and list(cfg["label_names"]) == INPUTS["classes"]


def test_the_users_keywords_win_over_the_records(toy):
    state, _ = toy
    model = zoo.create("lenet5.toy", img_size=32)  # LeNet-5 pads 28 px to its 32-px field: same parameters
    assert model.zoo_config["kwargs"] == {"img_size": 32}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_a_tampered_file_is_refused_in_one_line_naming_both_hashes(toy):
    _, path = toy
    expected = sha256(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsHashError) as info:
        zoo.create("lenet5.toy")
    message = str(info.value)
    assert "\n" not in message and expected in message and sha256(path) in message and "lenet5.toy" in message


def test_an_unknown_tag_lists_the_models_tags_and_the_nearest(toy):
    with pytest.raises(UnknownWeightsError) as info:
        zoo.create("lenet5.tyo")
    assert "toy" in str(info.value) and "did you mean 'toy'" in str(info.value)
    bare = next(n for n in zoo.list_models() if not registry.weights_of(n))
    with pytest.raises(UnknownWeightsError, match="has no registered weights"):
        zoo.create(bare, weights="toy")
    with pytest.raises(TypeError, match="drop weights="):
        zoo.create("lenet5.toy", weights="toy")


def test_list_models_pretrained_info_and_the_cli_show_the_tag(toy, capsys):
    assert "lenet5.toy" in zoo.list_models(pretrained=True)
    assert zoo.list_models("lenet5", pretrained=True)[:2] == ["lenet5.toy"] or "lenet5.toy" in zoo.list_models(
        "lenet5", pretrained=True
    )
    assert "lenet5.toy" not in zoo.list_models("mlp*", pretrained=True)
    card = zoo.info("lenet5")
    (record,) = [w for w in card.weights if w.tag == "toy"]
    assert record.source == "toy_plugin" and record.licence == "MIT" and record.metrics["top1"] == 50.0
    assert "lenet5.toy: toy; top1 50.0 (test)" in str(card)
    assert card.to_dict()["weights"][[w.tag for w in card.weights].index("toy")]["sha256"] == record.sha256
    from zoo.cli import main

    assert main(["list", "lenet*", "--pretrained"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("lenet5.toy"))
    assert row.split()[1:4] == ["toy", "50.00", "test"] and "toy_plugin" in row
    assert main(["list", "lenet*", "--pretrained", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert "lenet5.toy" in [r["name"] for r in rows]


def test_the_kit_loads_every_registered_tag(toy, toy_package):
    report = check_architecture("lenet5")
    assert any("lenet5.toy" in line for line in report.passed)
    _, path = toy_package
    save_file(zoo.create("lenet5", img_size=32).state_dict(), str(path))  # another file: the hash check fails
    with pytest.raises(AssertionError, match="lenet5.toy"):
        check_architecture("lenet5")


def test_plugins_that_clash_raise_or_name_unknown_models_are_contained(fresh_registry, toy_package, isolated_caches):
    _, path = toy_package

    class Raising:
        @zoo.hookimpl
        def register_weights(self, register):
            raise SystemExit("boom")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        zoo.register_plugin(WeightsPlugin(("lenet5", "toy", toy_fields(path))), name="first")
        zoo.register_plugin(WeightsPlugin(("lenet5", "toy", toy_fields(path))), name="second")
        zoo.register_plugin(WeightsPlugin(("lenet55", "toy", toy_fields(path))), name="third")
        zoo.register_plugin(Raising(), name="raising")
    messages = [str(w.message) for w in caught]
    assert any("'first'" in m and "'second'" in m for m in messages)  # the duplicate names both plugins
    assert any("unknown model 'lenet55'" in m and "did you mean 'lenet5'" in m for m in messages)
    status = {p.name: p.status for p in zoo.plugins()}
    assert status["first"] == "ok" and status["second"] == "partial" and status["raising"] == "failed"
    assert zoo.create("lenet5.toy") is not None  # the first registration is kept; the others did not stop it
    with pytest.raises(ValueError, match="already registered by 'first'"):
        registry.ensure_loaded()
        from zoo.plugin_manager import register_weights

        register_weights("lenet5", "toy", **toy_fields(path))


def test_a_missing_file_says_every_place_and_download_fetches_it_checked(fresh_registry, isolated_caches, tmp_path):
    torch.manual_seed(2)
    state = zoo.create("mlp", hidden_sizes=(8,), img_size=8).state_dict()
    remote = tmp_path / "remote" / "mlp_tiny.safetensors"
    remote.parent.mkdir()
    save_file(state, str(remote))
    fields = dict(
        file=remote.as_uri(), sha256=sha256(remote), inputs=INPUTS, kwargs={"hidden_sizes": [8], "img_size": 8}
    )
    zoo.register_plugin(WeightsPlugin(("mlp", "tiny", fields)), name="remote_plugin")

    with pytest.raises(FileNotFoundError) as info:
        zoo.create("mlp.tiny")
    message = str(info.value)
    caches = [tmp_path / "zoo-home" / "weights", tmp_path / "xdg" / "zoo" / "weights", tmp_path / "torch" / "hub"]
    assert all(str(c) in message for c in caches) and "download=True" in message and "\n" not in message

    model = zoo.create("mlp.tiny", download=True)
    fetched = tmp_path / "zoo-home" / "weights" / "mlp_tiny.safetensors"
    assert fetched.read_bytes() == remote.read_bytes()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    remote.unlink()  # offline from now on: the cached copy is found without download
    assert zoo.create("mlp.tiny") is not None


def test_a_download_that_does_not_match_is_deleted(fresh_registry, isolated_caches, tmp_path):
    remote = tmp_path / "mlp_bad.safetensors"
    save_file(zoo.create("mlp", hidden_sizes=(8,), img_size=8).state_dict(), str(remote))
    fields = dict(file=remote.as_uri(), sha256="0" * 64, inputs=INPUTS, kwargs={"hidden_sizes": [8], "img_size": 8})
    zoo.register_plugin(WeightsPlugin(("mlp", "bad", fields)), name="bad_plugin")
    with pytest.raises(WeightsHashError, match="0{64}"):
        zoo.create("mlp.bad", download=True)
    assert not (tmp_path / "zoo-home" / "weights" / "mlp_bad.safetensors").exists()


def test_the_torch_hub_cache_is_searched_too(fresh_registry, isolated_caches, tmp_path):
    torch.manual_seed(3)
    state = zoo.create("mlp", hidden_sizes=(4,), img_size=8).state_dict()
    hub = tmp_path / "torch" / "hub" / "checkpoints" / "mlp_hub.safetensors"
    hub.parent.mkdir(parents=True)
    save_file(state, str(hub))
    fields = dict(file="https://example.invalid/mlp_hub.safetensors", sha256=sha256(hub), inputs=INPUTS,
                  kwargs={"hidden_sizes": [4], "img_size": 8})  # fmt: skip
    zoo.register_plugin(WeightsPlugin(("mlp", "hub", fields)), name="hub_plugin")
    model = zoo.create("mlp", weights="hub")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


@pytest.mark.parametrize(
    "registration, problem",
    [
        (("lenet5", "Bad.Tag", {}), "invalid tag"),
        (("lenet5", "ok", {"file": "x.safetensors", "sha256": "abc", "inputs": INPUTS, "package": "p"}), "64 hex"),
        (("lenet5", "ok", {"file": "x.safetensors", "sha256": "0" * 64, "inputs": INPUTS}), "needs package="),
        (("lenet5", "ok", {"file": "x", "sha256": "0" * 64, "inputs": {}, "package": "p"}), "input_size"),
        (("lenet5", "ok", {"file": "x", "sha256": "0" * 64, "inputs": INPUTS, "package": "p", "colour": 1}), "colour"),
    ],
)
def test_malformed_registrations_are_refused_in_one_line(fresh_registry, registration, problem):
    from zoo.plugin_manager import register_weights

    model, tag, fields = registration
    with pytest.raises(ValueError, match=problem):
        register_weights(model, tag, **fields)


def test_torchvision_weight_names_map_to_timms_tags():
    import torchvision.models as tvm

    assert tv_tag("IMAGENET1K_V1") == "tv_in1k" and tv_tag("IMAGENET1K_V2") == "tv2_in1k"
    assert (
        tv_tag("IMAGENET1K_SWAG_E2E_V1") == "swag_e2e_in1k" and tv_tag("IMAGENET1K_SWAG_LINEAR_V1") == "swag_lin_in1k"
    )
    tags = [w.tag for w in zoo.info("vit_base_patch16").weights]
    assert tags == [tv_tag(m.name) for m in tvm.get_model_weights(zoo.info("vit_base_patch16").twin)]
    assert "swag_e2e_in1k" in tags
    listed = zoo.list_models("googlenet*", pretrained=True)
    assert listed == ["googlenet.tv_in1k"]


# ---------------------------------------------------------------------------------------------------------
# zoo's own weights, shipped in the package (made by benchmarks/train_weights.py)
# ---------------------------------------------------------------------------------------------------------

SHIPPED = {f"{r['model']}.{r['tag']}": r for r in __import__("zoo.weights_data").weights_data.records()}
FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_zoo_ships_lenet5_and_the_mlp_on_digits_and_fashion_mnist():
    assert set(SHIPPED) == {"lenet5.digits", "mlp.digits", "lenet5.fashion_mnist", "mlp.fashion_mnist"}
    assert set(SHIPPED) <= set(zoo.list_models(pretrained=True))
    for record in SHIPPED.values():
        assert record["size"] <= 1_050_000 and record["recipe"]["command"].startswith("python benchmarks/train_weights")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_weights_load_hash_match_and_reach_their_recorded_accuracy(name, isolated_caches):
    record = SHIPPED[name]
    if record["dataset"] == "fashion-mnist" and not (FASHION / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST is not installed at {FASHION} (Debian's dataset package)")
    from importlib import resources

    path = Path(str(resources.files("zoo.weights_data") / record["file"]))
    assert sha256(path) == record["sha256"] and path.stat().st_size == record["size"]
    model = zoo.create(name)
    assert model.zoo_config["inputs"]["input_size"] == record["inputs"]["input_size"]
    data = zoo.load_dataset(
        record["dataset"], **{k: v for k, v in record["recipe"]["load_dataset"].items() if k != "name"}
    )
    assert data.test.images.shape[1:] == tuple(record["inputs"]["input_size"])
    assert record["metrics"]["split"] == "test" and len(data.test) == record["metrics"]["num_samples"]
    # a plain loop over the test split, prepared as the input record says: [0, 1], then mean/std
    mean, std = (torch.tensor(record["inputs"][k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data.test), 512):
            x = data.test.images[start : start + 512].float() / 255
            correct += (model((x - mean) / std).argmax(1) == data.test.labels[start : start + 512]).sum().item()
    top1 = 100 * correct / len(data.test)
    assert abs(top1 - record["metrics"]["top1"]) <= 0.3, (top1, record["metrics"])
    assert abs(100 * zoo.evaluate(model, data.test).top1 - top1) <= 0.01  # zoo's evaluate agrees with the loop


def test_zoo_predict_works_on_the_shipped_weights_through_the_cli(tmp_path, capsys):
    from PIL import Image

    from zoo.cli import main

    data = zoo.load_dataset("digits")
    model = zoo.create("lenet5.digits").eval()
    record = model.zoo_config["inputs"]
    mean, std = record["mean"][0], record["std"][0]
    paths, expected = [], []
    for i in range(4):
        image = data.test.images[i, 0].numpy()  # 32 x 32 uint8, the input size the weights take: no resize
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(image, mode="L").save(paths[-1])
        with torch.no_grad():
            x = (torch.from_numpy(image).float().view(1, 1, 32, 32) / 255 - mean) / std
            expected.append(record["classes"][model(x).argmax(1).item()])
    assert main(["predict", "lenet5.digits", *map(str, paths), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in rows] == expected


def test_a_tag_fine_tuned_to_other_classes_does_not_keep_the_old_class_names():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TransferWarning
        model = zoo.create("lenet5.digits", num_classes=3)
    kept = zoo.create("lenet5.digits")
    assert kept.zoo_config["inputs"]["classes"] == [str(i) for i in range(10)]
    inputs = model.zoo_config["inputs"]
    assert inputs["classes"] is None and inputs["num_classes"] == 3  # not the ten digits under a 3-class head
    assert inputs["input_dtype"] == "uint8" and inputs["task"] == "classification"  # the data's facts are kept
    assert inputs["mean"] == kept.zoo_config["inputs"]["mean"]
    assert model.zoo_config["weights"] == "lenet5.digits" and model.zoo_config["transfer"]["fresh"]
    record = zoo.predict(model, torch.zeros(1, 1, 32, 32, dtype=torch.uint8))[0]
    assert record["label"] in (0, 1, 2)
