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

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first access (PEP 562)
_LAZY = {
    # registry
    "create": "zoo.registry",
    "list_models": "zoo.registry",
    "list_sources": "zoo.registry",
    "list_datasets": "zoo.registry",
    "info": "zoo.registry",
    "plugins": "zoo.registry",
    "register_model": "zoo.registry",
    "register_dataset": "zoo.registry",
    "register_plugin": "zoo.registry",
    "unregister_plugin": "zoo.registry",
    "ModelCard": "zoo.registry",
    "UnknownModelError": "zoo.registry",
    "UnknownDatasetError": "zoo.registry",
    # data
    "load_dataset": "zoo.data",
    "Dataset": "zoo.data",
    # engine
    "fit": "zoo.engine",
    "evaluate": "zoo.engine",
    "load": "zoo.engine",
    "History": "zoo.engine",
    "TrainConfig": "zoo.engine",
    "Callback": "zoo.engine",
    "EarlyStopping": "zoo.engine",
    "CSVLogger": "zoo.engine",
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
    "UnknownModelError",
    "UnknownDatasetError",
    "load_dataset",
    "Dataset",
    "fit",
    "evaluate",
    "load",
    "History",
    "TrainConfig",
    "Callback",
    "EarlyStopping",
    "CSVLogger",
    "summary",
    "compare",
    "Results",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if name == "testing":
        return importlib.import_module("zoo.testing")
    raise AttributeError(f"module 'zoo' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from zoo import testing
    from zoo.comparison import Results, compare, summary
    from zoo.data import Dataset, load_dataset
    from zoo.engine import Callback, CSVLogger, EarlyStopping, History, TrainConfig, evaluate, fit, load
    from zoo.registry import (
        ModelCard,
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
