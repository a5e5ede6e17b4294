"""TrainConfig (zoo/train/config.py): the one declaration of fit's options, and misspelt options."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
from conftest import tiny

import zoo

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)


def test_train_config_documents_every_option():

    fields = {f.name for f in dataclasses.fields(zoo.TrainConfig)}
    params = set(inspect.signature(zoo.fit).parameters) - {"model", "data", "val"}
    assert fields == params
    defaults = zoo.TrainConfig()
    for name in params:
        assert inspect.signature(zoo.fit).parameters[name].default == getattr(defaults, name), name
        assert dataclasses.fields(zoo.TrainConfig)[0].metadata["help"]
        assert f"{name} (default" in zoo.fit.__doc__  # the docstring lists every option, from the same fields


def test_a_misspelt_fit_option_names_the_nearest():
    with pytest.raises(TypeError, match=r"fit\(\) got an unknown option 'lr_rate'; accepted: .*did you mean 'lr'\?$"):
        zoo.fit(tiny(), (torch.zeros(4, 1, 16, 16, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)), lr_rate=1)
