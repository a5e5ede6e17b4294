"""The tests every zoo plugin should have: the plugin is discovered, and each model passes zoo's checks."""

import pytest

import zoo
from zoo.testing import check_architecture

NAMES = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]


def test_discovered_through_the_entry_point():
    assert set(NAMES) <= set(zoo.list_models(family="resnet"))
    assert zoo.info("resnet20").plugin == "zoo_resnet"


@pytest.mark.parametrize("name", NAMES[:2])
def test_architecture(name):
    check_architecture(name)


def test_depth_gives_the_papers_parameter_count():
    # Table 6 of the paper: ResNet-20 has 0.27M parameters, ResNet-110 1.7M.
    assert round(zoo.info("resnet20").num_params / 1e6, 2) == 0.27
    assert round(zoo.info("resnet110").num_params / 1e6, 1) == 1.7


def test_the_shipped_weights_load_and_reach_their_recorded_accuracy():
    (record,) = [w for w in zoo.info("resnet20").weights if w.tag == "digits"]
    assert record.source == "zoo_resnet" and "resnet20.digits" in zoo.list_models(pretrained=True)
    model = zoo.create("resnet20.digits")  # found in the package, sha256-checked
    top1 = 100 * zoo.evaluate(model, zoo.load_dataset("digits").test).top1
    assert abs(top1 - record.metrics["top1"]) <= 0.3
