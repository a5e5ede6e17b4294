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

# public name -> module that defines it; resolved on first access (PEP 562)
_LAZY = {
    # registry
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
    "ModelCard": "zoo.registry",
    "UnknownModelError": "zoo.registry",
    "UnknownDatasetError": "zoo.registry",
    "PluginError": "zoo.containment",
    "Reported": "zoo.specs",
    "ModelOptionError": "zoo.registry",
    # data
    "load_dataset": "zoo.data",
    "Dataset": "zoo.data",
    "InputRecord": "zoo.inputs",
    # training
    "fit": "zoo.train",
    "evaluate": "zoo.train",
    "predict": "zoo.train",
    "embed": "zoo.train.predict",
    "load": "zoo.train",
    "save": "zoo.train",
    "save_pretrained": "zoo.hub",
    "History": "zoo.train",
    "Metrics": "zoo.train",
    "TrainConfig": "zoo.train",
    "Callback": "zoo.train",
    "EarlyStopping": "zoo.train",
    "CSVLogger": "zoo.train",
    # compare
    "summary": "zoo.comparison",
    "compare": "zoo.comparison",
    "Results": "zoo.comparison",
}

__all__ = [
    "__version__",
    "hookimpl",
    "testing",
    "create",
    "list_models",
    "list_sources",
    "list_datasets",
    "info",
    "plugins",
    "register_model",
    "register_dataset",
    "register_plugin",
    "unregister_plugin",
    "ModelCard",
    "Reported",
    "UnknownModelError",
    "UnknownDatasetError",
    "PluginError",
    "ModelOptionError",
    "load_dataset",
    "Dataset",
    "InputRecord",
    "fit",
    "evaluate",
    "predict",
    "embed",
    "load",
    "save",
    "save_pretrained",
    "History",
    "Metrics",
    "TrainConfig",
    "Callback",
    "EarlyStopping",
    "CSVLogger",
    "summary",
    "compare",
    "Results",
]


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


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from zoo import testing
    from zoo.comparison import Results, compare, summary
    from zoo.containment import PluginError
    from zoo.data import Dataset, load_dataset
    from zoo.hub import save_pretrained
    from zoo.inputs import InputRecord
    from zoo.registry import (
        ModelCard,
        ModelOptionError,
        UnknownDatasetError,
        UnknownModelError,
        create,
        info,
        list_datasets,
        list_models,
        list_sources,
        plugins,
        register_dataset,
        register_model,
        register_plugin,
        unregister_plugin,
    )
    from zoo.specs import Reported
    from zoo.train import (
        Callback,
        CSVLogger,
        EarlyStopping,
        History,
        Metrics,
        TrainConfig,
        evaluate,
        fit,
        load,
        predict,
        save,
    )
    from zoo.train.predict import embed
