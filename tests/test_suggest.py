"""The one "did you mean": ranked by what the user most likely meant."""

import pytest

import zoo
from zoo.suggest import closest, suggest


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("lenet", ["lenet5"]),  # a prefix is what was meant; no spelling neighbours padded after it
        ("LeNet5", ["lenet5"]),  # the same name in another case, alone
        ("mobilenet_v3", ["mobilenet_v3_large", "mobilenet_v3_small"]),
        ("lr_rate", ["lr"]),  # nothing close: the choice the word begins with
        ("zzzz", []),
    ],
)
def test_closest_ranks_case_then_prefix_then_spelling(word, expected):
    choices = ["lenet5", "alexnet", "googlenet", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "lr"]
    assert closest(word, choices, n=3) == expected


def test_closest_falls_back_to_spelling():
    assert closest("alexnt", ["lenet5", "alexnet", "googlenet"], n=3)[0] == "alexnet"


def test_suggest_wording():
    assert suggest("epoch", ["epochs", "lr"]) == "; did you mean 'epochs'?"
    assert suggest("x", ["epochs"]) == ""


def test_unknown_model_named_by_a_bridge_points_to_the_bridges():
    with pytest.raises(zoo.UnknownModelError, match=r"did you mean 'timm/resnet18' or 'torchvision/resnet18'\?"):
        zoo.create("resnet18")
    with pytest.raises(zoo.UnknownModelError, match=r"did you mean 'lenet5'\? "):
        zoo.info("lenet")
