"""Model cards: published results (``reported``), torchvision's figures read from its metadata for every twin,
the registration checks of the new metadata, and ``zoo list --long --sort``."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.models import get_model_weights

import zoo
from zoo import registry
from zoo.cli import main
from zoo.specs import Reported

# The torchvision twins of the built-ins: zoo name -> torchvision builder.
TWINS = {
    "alexnet": "alexnet",
    "googlenet": "googlenet",
    **{f"densenet{d}": f"densenet{d}" for d in (121, 161, 169, 201)},
    **{n: n for n in ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")},
    **{f"efficientnet_b{i}": f"efficientnet_b{i}" for i in range(8)},
    "vit_base_patch16": "vit_b_16",
    "vit_base_patch32": "vit_b_32",
    "vit_large_patch16": "vit_l_16",
}


def tiny(*, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_chans * img_size * img_size, num_classes))


def test_the_twins_are_declared():
    declared = {n: registry.get_spec(n).twin for n in zoo.list_models() if registry.get_spec(n).twin}
    assert declared == TWINS


@pytest.mark.parametrize("name", sorted(TWINS))
def test_twin_cards_show_torchvisions_metadata_first(name):
    default = get_model_weights(TWINS[name]).DEFAULT
    metrics = default.meta["_metrics"]["ImageNet-1K"]
    card = zoo.info(name)
    top1, top5 = card.reported[:2]
    assert (top1.dataset, top1.metric, top1.value) == ("ImageNet-1k", "top-1", metrics["acc@1"])
    assert (top5.dataset, top5.metric, top5.value) == ("ImageNet-1k", "top-5", metrics["acc@5"])
    assert top1.source == top5.source == f"torchvision {default}"
    assert card.top1() == top1 and card.twin == TWINS[name]


def test_paper_figures_are_on_the_cards():
    lenet = zoo.info("lenet5")
    assert Reported("MNIST", "test error %", 0.95, "LeCun et al. 1998, Fig. 14 (LeNet-5)") in lenet.reported
    assert lenet.twin is None and lenet.top1() is None
    # every built-in entry is a complete, finite figure with its source
    for name in zoo.list_models():
        for r in registry.get_spec(name).reported:
            assert r.dataset and r.metric and r.source and r.value == r.value


def test_card_dict_and_text_carry_the_figures(capsys):
    card = zoo.info("mobilenet_v2")
    d = json.loads(json.dumps(card.to_dict()))
    assert d["reported"][0] == card.reported[0].to_dict()
    assert set(d["reported"][0]) == {"dataset", "metric", "value", "source"}
    assert "reported" in str(card) and str(card.reported[0]) in str(card)
    assert main(["info", "mobilenet_v2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reported"] == d["reported"]


def test_reported_metadata_is_checked_at_registration(fresh_registry):
    good = dict(family="tiny", input_size=(1, 8, 8), num_classes=10)
    as_dict = {"dataset": "Digits", "metric": "top-1", "value": 97, "source": "A test, Table 1"}
    zoo.register_model("carded", reported=[as_dict, Reported("Digits", "top-5", 99.5, "A test, Table 1")], **good)(tiny)
    table1 = "A test, Table 1"
    assert zoo.info("carded").reported == (
        Reported("Digits", "top-1", 97.0, table1),
        Reported("Digits", "top-5", 99.5, table1),
    )
    bad = [
        ("a string", "must be a list"),
        ([{"dataset": "D", "metric": "top-1", "value": 1}], "must have the keys dataset, metric, value, source"),
        ([{**as_dict, "value": "97%"}], "value must be a finite number"),
        ([{**as_dict, "value": float("nan")}], "value must be a finite number"),
        ([{**as_dict, "source": ""}], "source must be a non-empty string"),
    ]
    for i, (reported, message) in enumerate(bad):
        with pytest.raises(ValueError, match=message):
            zoo.register_model(f"bad{i}", reported=reported, **good)(tiny)
    with pytest.raises(ValueError, match="twin for 'bad_twin' must be the name of a torchvision builder"):
        zoo.register_model("bad_twin", twin="not a name", **good)(tiny)


@pytest.mark.slow
def test_list_long_shows_params_flops_and_top1_sorted(capsys):
    assert main(["list", "mobilenet*", "--long", "--sort", "top1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == sorted(zoo.list_models("mobilenet*"), key=lambda n: -zoo.info(n).top1().value)
    v2 = next(r for r in rows if r["name"] == "mobilenet_v2")
    assert v2["params"] == zoo.info("mobilenet_v2").num_params
    assert v2["top1"] == zoo.info("mobilenet_v2").reported[0].to_dict()
    assert 1e8 < v2["flops"] < 2e9  # ~0.6 GFLOPs at 224 px (a multiply-add counts 2)
    assert main(["list", "lenet*", "--long"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:7] == ["name", "family", "year", "input", "params", "FLOPs", "top-1"]
    assert main(["list", "m*", "--sort", "params", "-1"]) == 0
    names = capsys.readouterr().out.split()
    params = [zoo.info(n).num_params for n in names]
    assert params == sorted(params)
