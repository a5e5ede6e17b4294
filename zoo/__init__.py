"""zoo: a plugin-based model zoo for PyTorch.

    import zoo
    model = zoo.create("lenet5")
    data = zoo.load_dataset("digits")
    history = zoo.fit(model, data, epochs=5)

Importing zoo is light: the registry, the engine and the comparison tools load on first use, and nothing
imports timm until a ``timm/...`` model is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from zoo.hookspecs import hookimpl
from zoo.version import __version__

# The one table of public names: name -> the module that defines it (for the subpackages, the package that
# exports it), resolved on first access (PEP 562). ``__all__`` is made from it, and the TYPE_CHECKING imports at
# the end repeat it for type checkers (tests/test_homes.py checks that they agree).
_LAZY = {
    # registry and plugins
    "create": "zoo.registry",
    "list_models": "zoo.registry",
    "list_sources": "zoo.registry",
    "list_datasets": "zoo.registry",
    "info": "zoo.registry",
    "plugins": "zoo.plugin_manager",
    "register_model": "zoo.plugin_manager",
    "register_dataset": "zoo.plugin_manager",
    "register_plugin": "zoo.plugin_manager",
    "unregister_plugin": "zoo.plugin_manager",
    "register_weights": "zoo.plugin_manager",
    "list_weights": "zoo.registry",
    "UnknownWeightsError": "zoo.pretrained",
    "UnknownModelError": "zoo.plugin_manager",
    "UnknownDatasetError": "zoo.plugin_manager",
    "ModelOptionError": "zoo.plugin_manager",
    "PluginError": "zoo.containment",
    "ModelCard": "zoo.specs",
    "Reported": "zoo.specs",
    # data
    "load_dataset": "zoo.data",
    "Dataset": "zoo.data",
    "InputRecord": "zoo.inputs",
    # training (the defining modules: ``zoo.train.evaluate`` is both a module and a function's name)
    "fit": "zoo.train.trainer",
    "evaluate": "zoo.train.evaluate",
    "predict": "zoo.train.predict",
    "embed": "zoo.train.predict",
    "load": "zoo.modelfile",
    "save": "zoo.modelfile",
    "save_pretrained": "zoo.hub",
    "History": "zoo.train.callbacks",
    "Metrics": "zoo.train.callbacks",
    "TrainConfig": "zoo.train.config",
    "Callback": "zoo.train.callbacks",
    "EarlyStopping": "zoo.train.callbacks",
    "CSVLogger": "zoo.train.callbacks",
    # compare
    "summary": "zoo.comparison",
    "compare": "zoo.comparison",
    "Results": "zoo.comparison",
}

__all__ = ["__version__", "hookimpl", "testing", *_LAZY]


_SUBMODULES = (
    "testing",
    "data",
    "train",
    "registry",
    "plugin_manager",
    "containment",
    "specs",
    "suggest",
    "weights",
    "transfer",
    "hub",
    "comparison",
    "plotting",
    "models",
    "bridges",
    "cli",
    "version",
)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:  # zoo.data, zoo.train, ...: attributes of zoo from the first access on
        return importlib.import_module(f"zoo.{name}")
    raise AttributeError(f"module 'zoo' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs, never executed: _LAZY again, as explicit re-exports (`x as x`)
    from zoo import testing as testing
    from zoo.comparison import (
        Results as Results,
        compare as compare,
        summary as summary,
    )
    from zoo.containment import (
        PluginError as PluginError,
    )
    from zoo.data import (
        Dataset as Dataset,
        load_dataset as load_dataset,
    )
    from zoo.hub import save_pretrained as save_pretrained
    from zoo.inputs import InputRecord as InputRecord
    from zoo.modelfile import (
        load as load,
        save as save,
    )
    from zoo.plugin_manager import (
        ModelOptionError as ModelOptionError,
        UnknownDatasetError as UnknownDatasetError,
        UnknownModelError as UnknownModelError,
        plugins as plugins,
        register_dataset as register_dataset,
        register_model as register_model,
        register_plugin as register_plugin,
        register_weights as register_weights,
        unregister_plugin as unregister_plugin,
    )
    from zoo.pretrained import UnknownWeightsError as UnknownWeightsError
    from zoo.registry import (
        create as create,
        info as info,
        list_datasets as list_datasets,
        list_models as list_models,
        list_sources as list_sources,
        list_weights as list_weights,
    )
    from zoo.specs import (
        ModelCard as ModelCard,
        Reported as Reported,
    )
    from zoo.train.callbacks import (
        Callback as Callback,
        CSVLogger as CSVLogger,
        EarlyStopping as EarlyStopping,
        History as History,
        Metrics as Metrics,
    )
    from zoo.train.config import TrainConfig as TrainConfig
    from zoo.train.evaluate import evaluate as evaluate
    from zoo.train.predict import (
        embed as embed,
        predict as predict,
    )
    from zoo.train.trainer import fit as fit
