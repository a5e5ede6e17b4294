"""TrainConfig (zoo/train/config.py): the one declaration of fit's options, and misspelt options."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

import zoo

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)


def test_train_config_documents_every_option():
    fields = {f.name: f for f in dataclasses.fields(zoo.TrainConfig)}
    params = inspect.signature(zoo.fit).parameters
    assert set(fields) == set(params) - {"model", "data", "val"}
    defaults = zoo.TrainConfig()
    doc = " ".join(zoo.fit.__doc__.split())  # the docstring lists every option, from the same fields
    for name, field in fields.items():
        assert params[name].default == getattr(defaults, name), name
        help_text = field.metadata.get("help", "")
        assert help_text.strip(), f"option {name} has no help text"
        assert f"{name} (default" in doc and " ".join(help_text.split()) in doc, name


def test_a_misspelt_fit_option_names_the_nearest(tiny):
    with pytest.raises(TypeError, match=r"fit\(\) got an unknown option 'lr_rate'; accepted: .*did you mean 'lr'\?$"):
        zoo.fit(tiny(), (torch.zeros(4, 1, 16, 16, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)), lr_rate=1)
