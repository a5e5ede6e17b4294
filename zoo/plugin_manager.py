"""The plugin manager: discovery, loading, validation and containment of plugins, and the tables they fill.

Plugins are loaded lazily, the first time the registry is used, in a fixed order: the built-ins (the model
families, the datasets, the timm/torchvision bridges), then entry-point plugins of the group ``zoo`` sorted by
name. Each plugin is loaded and called on its own, so that one failing plugin cannot take the rest down: its
failure becomes a warning and a ``failed`` row in ``zoo.plugins()``. The first registration of a name wins; a
later one is refused with a warning naming both plugins.

Plugin code (imports, hooks, builders, sources, ``convert_weights``) may raise anything, ``SystemExit`` and
``KeyboardInterrupt`` included: what it raises is contained like any other failure (see ``call_plugin``). Only
a Ctrl-C the user really pressed, told apart by watching SIGINT while the plugin runs, still stops the program.
Lookup and ``create`` live in ``zoo.registry``, which reads the tables through ``ensure_loaded()``. (The module is
not called ``plugins`` because ``zoo.plugins()`` is the public list of loaded plugins.)
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import warnings
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.containment import call_plugin, describe
from zoo.hookspecs import PROJECT
from zoo.models import family_modules
from zoo.pretrained import WeightsRecord, make_record, twin_records
from zoo.registration import (
    DATASET_METADATA,
    MODEL_METADATA,
    NAME_RE,
    SOURCE_METADATA,
    builder_problem,
    card_problem,
    make_model_spec,
    metadata_problem,
)
from zoo.specs import DatasetSpec, ModelSpec, PluginInfo, SourceSpec
from zoo.suggest import suggest

__all__ = [
    "BUILTIN_PLUGINS",
    "builtin_plugins",
    "ENV_LOAD_PLUGINS",
    "ZooPluginWarning",
    "UnknownModelError",
    "UnknownDatasetError",
    "ModelOptionError",
    "ModelTooLargeError",
    "Registry",
    "ensure_loaded",
    "register_model",
    "register_dataset",
    "register_weights",
    "register_plugin",
    "unregister_plugin",
    "reset",
    "plugins",
]

ENV_LOAD_PLUGINS = "ZOO_LOAD_PLUGINS"

# Modules besides the families that register through the hooks exactly like a third-party plugin, loaded after them.
OTHER_BUILTINS = ("zoo.data.datasets", "zoo.bridges.timm", "zoo.bridges.torchvision", "zoo.weights_data")


def builtin_plugins() -> tuple[str, ...]:
    """The built-in plugin modules in load order: every family module of ``zoo.models`` (found there, so a new
    family file registers with no edit here), then the datasets, the bridges and zoo's own weights."""
    return (*family_modules(), *OTHER_BUILTINS)


BUILTIN_PLUGINS = builtin_plugins()  # as found when zoo was imported; discovery calls builtin_plugins() again


class ZooPluginWarning(UserWarning):
    """A plugin failed to load, or one of its registrations was refused."""


class UnknownModelError(KeyError):
    """No model of that name is registered. A ``KeyError`` whose message reads well."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownDatasetError(KeyError):
    """No dataset of that name is registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelOptionError(ValueError, TypeError):
    """A uniform builder keyword (``num_classes``, ``in_chans``, ``drop_rate``, ``img_size``) has a bad value or type.

    Both a ``ValueError`` and a ``TypeError``, so that either ``except`` clause catches it."""


class ModelTooLargeError(ValueError):
    """``create_within`` refused a model with more parameters than it was allowed (a checkpoint's own weights)."""


# ---------------------------------------------------------------------------------------------------------
# The registry state
# ---------------------------------------------------------------------------------------------------------


class Registry:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.extra_plugins: list[tuple[object, str]] = []  # registered by register_plugin() (tests, notebooks)
        self.loading = False  # discovery is running, in the thread that holds the lock
        self.clear()

    def clear(self) -> None:
        """Forget what was discovered (not the lock, not the in-process plugins, which load again)."""
        self.loaded = False
        self.pm: pluggy.PluginManager | None = None
        self.models: dict[str, ModelSpec] = {}
        self.datasets: dict[str, DatasetSpec] = {}
        self.sources: dict[str, SourceSpec] = {}
        self.weights: dict[str, WeightsRecord] = {}  # "model.tag" -> record (torchvision twins' tags come lazily)
        self.plugins: dict[str, PluginInfo] = {}
        self.source_cache: dict[str, ModelSpec] = {}
        self.param_cache: dict[str, int] = {}


_REG = Registry()


def _zoo_version() -> str:
    from zoo.version import __version__

    return __version__


def _new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def ensure_loaded() -> Registry:
    """The registry, discovering the plugins the first time.

    Plugin code that uses the registry while it is being discovered (``zoo.list_models()`` in a ``register_models``
    hook or at import) gets the tables as loaded so far: the lock is re-entrant and held by the discovering thread,
    so ``loading`` seen under it means this very thread. Starting discovery over from inside would recurse until
    the stack ran out, and the failure's clean-up would pull the plugin manager from under the outer discovery.
    """
    if _REG.loaded:
        return _REG
    with _REG.lock:
        if _REG.loaded or _REG.loading:
            return _REG
        _REG.loading = True
        try:
            _discover()
        finally:
            _REG.loading = False
        _REG.loaded = True
    return _REG


def _discover() -> None:
    """Load the built-ins, the entry points and the in-process plugins, then every plugin's weights (the caller
    holds the lock)."""
    _REG.pm = _new_plugin_manager()
    version = _zoo_version()
    try:
        for modname in builtin_plugins():
            _load_plugin(lambda m=modname: importlib.import_module(m), modname, version, "builtin")
        for ep in _entry_points():
            _load_plugin(ep.load, ep.name, _ep_version(ep), "entry point")
        for obj, name in list(_REG.extra_plugins):  # a plugin may register_plugin() another while it loads
            if name not in _REG.plugins:  # ... which is loaded already
                _load_plugin(lambda o=obj: o, name, _plugin_attr(obj, "__version__"), "in-process")
        for info in list(_REG.plugins.values()):  # weights after every model: a plugin may tag another's
            _collect_weights(info)
    except BaseException:  # the user's Ctrl-C: leave nothing half-discovered behind; the next use starts over
        _REG.clear()
        raise


def _entry_points() -> list[importlib_metadata.EntryPoint]:
    eps = {ep.name: ep for ep in importlib_metadata.entry_points(group=PROJECT)}
    wanted = os.environ.get(ENV_LOAD_PLUGINS)
    if wanted is not None:
        names = {n.strip() for n in wanted.split(",") if n.strip()}
        dists = {n: ep.dist.name for n, ep in eps.items() if ep.dist is not None}
        unknown = sorted(names - set(eps) - set(dists.values()))
        if unknown:  # a typo would otherwise load nothing without a word
            installed = ", ".join(sorted(eps)) or "none"
            warnings.warn(
                f"{ENV_LOAD_PLUGINS} names {', '.join(repr(n) for n in unknown)}: no installed zoo plugin has that "
                f"name; installed: {installed}{suggest(unknown[0], [*eps, *dists.values()])}",
                ZooPluginWarning,
                stacklevel=2,
            )
        eps = {n: ep for n, ep in eps.items() if n in names or dists.get(n) in names}
    return [eps[n] for n in sorted(eps)]


def _ep_version(ep: importlib_metadata.EntryPoint) -> str | None:
    return ep.dist.version if ep.dist is not None else None


def _load_plugin(load: Callable[[], object], name: str, version: str | None, kind: str) -> None:
    """Import one plugin, validate its hookimpls, and call its hooks; any failure is contained to it."""
    info = PluginInfo(name=name, version=version, kind=kind)
    _REG.plugins[name] = info
    who = f"plugin '{name}'"
    try:
        call_plugin(who, _import_plugin, load, name)
    except Exception as exc:  # a broken plugin must never take the others down
        _fail(info, describe(exc))
        pm = _REG.pm
        with contextlib.suppress(Exception):
            if pm is not None and pm.get_plugin(name) is not None:
                call_plugin(who, pm.unregister, name=name)
        return
    for hook, make_register in (
        ("register_models", _model_register),
        ("register_model_sources", _source_register),
        ("register_datasets", _dataset_register),
    ):
        for impl in getattr(_REG.pm.hook, hook).get_hookimpls():
            if impl.plugin_name != name:
                continue
            try:
                call_plugin(who, impl.function, register=make_register(info, strict=False))
            except Exception as exc:
                _fail(info, f"{hook} raised {describe(exc)}")


def _collect_weights(info: PluginInfo) -> None:
    """Call one plugin's ``register_weights``, contained like the other hooks (run once every model is known)."""
    if info.status == "failed" or _REG.pm is None:
        return
    for impl in _REG.pm.hook.register_weights.get_hookimpls():
        if impl.plugin_name != info.name:
            continue
        try:
            call_plugin(f"plugin '{info.name}'", impl.function, register=_weights_register(info, strict=False))
        except Exception as exc:
            _fail(info, f"register_weights raised {describe(exc)}")


def _plugin_attr(plugin: object, attr: str) -> str | None:
    """A string attribute of a plugin object (``__version__``, ``__name__``), or ``None`` however it fails."""
    try:
        value = call_plugin("a plugin's attribute", getattr, plugin, attr, None)
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _import_plugin(load: Callable[[], object], name: str) -> None:
    assert _REG.pm is not None
    plugin = load()
    _validate_hookimpls(plugin, name)
    _REG.pm.register(plugin, name=name)


def _validate_hookimpls(plugin: object, name: str) -> None:
    known = {"register_models", "register_model_sources", "register_datasets", "register_weights"}
    for attr in dir(plugin):
        obj = getattr(plugin, attr, None)
        if callable(obj) and hasattr(obj, f"{PROJECT}_impl") and attr not in known:
            raise ValueError(f"unknown hook '{attr}'; zoo's hooks are {', '.join(sorted(known))}{suggest(attr, known)}")


def _fail(info: PluginInfo, message: str) -> None:
    info.status = "failed"
    info.errors.append(message)
    warnings.warn(f"zoo plugin '{info.name}' failed: {message}", ZooPluginWarning, stacklevel=3)


def _refuse(info: PluginInfo, message: str, strict: bool) -> None:
    """A single registration of a plugin is refused: raise if the user called us directly, else warn."""
    if strict:
        raise ValueError(message)
    if info.status == "ok":
        info.status = "partial"
    info.errors.append(message)
    warnings.warn(f"zoo plugin '{info.name}': {message}", ZooPluginWarning, stacklevel=3)


def _model_register(info: PluginInfo, strict: bool) -> Callable[..., None]:
    def register(name: str, builder: Callable[..., Any], **metadata: Any) -> None:
        override = metadata.pop("override", False) if strict else False
        problem = None
        if not isinstance(name, str) or not NAME_RE.match(name):
            problem = f"invalid model name {name!r}: use letters, digits, '_', '-', '.' (no '/')"
        problem = (
            problem
            or builder_problem(name, builder, metadata.get("keywords"))
            or metadata_problem("model", metadata, MODEL_METADATA)
            or card_problem(name, metadata)
        )
        if problem:
            return _refuse(info, problem, strict)
        existing = _REG.models.get(name)
        if existing is not None and not override:
            return _refuse(
                info,
                f"model '{name}' from plugin '{info.name}' is already registered by plugin '{existing.plugin}'; "
                f"the first registration is kept",
                strict,
            )
        _REG.models[name] = make_model_spec(name, builder, info, metadata)
        _REG.param_cache.pop(name, None)
        if name not in info.models:
            info.models.append(name)

    return register


def _source_register(info: PluginInfo, strict: bool) -> Callable[..., None]:
    def register(prefix: str, list_names: Callable, get_model: Callable, **metadata: Any) -> None:
        problem = None
        if not isinstance(prefix, str) or not NAME_RE.match(prefix):
            problem = f"invalid source prefix {prefix!r}"
        elif not callable(list_names) or not callable(get_model):
            problem = f"source '{prefix}': list_names and get_model must be callables"
        problem = problem or metadata_problem("source", metadata, SOURCE_METADATA)
        if problem is None and prefix in _REG.sources:
            owner = _REG.sources[prefix].plugin
            problem = f"source '{prefix}' from plugin '{info.name}' is already registered by plugin '{owner}'"
        if problem:
            return _refuse(info, problem, strict)
        _REG.sources[prefix] = SourceSpec(prefix, list_names, get_model, info.name, info.version, **metadata)
        info.sources.append(prefix)

    return register


def _dataset_register(info: PluginInfo, strict: bool) -> Callable[..., None]:
    def register(name: str, loader: Callable[..., Any], **metadata: Any) -> None:
        override = metadata.pop("override", False) if strict else False
        problem = None
        if not isinstance(name, str) or not NAME_RE.match(name):
            problem = f"invalid dataset name {name!r}"
        elif not callable(loader):
            problem = f"loader for dataset '{name}' is not callable (got {type(loader).__name__})"
        problem = problem or metadata_problem("dataset", metadata, DATASET_METADATA)
        if problem is None and name in _REG.datasets and not override:
            problem = (
                f"dataset '{name}' from plugin '{info.name}' is already registered by plugin "
                f"'{_REG.datasets[name].plugin}'; the first registration is kept"
            )
        if problem:
            return _refuse(info, problem, strict)
        md = dict(metadata)
        if md.get("input_size") is not None:
            md["input_size"] = tuple(int(v) for v in md["input_size"])
        if md.get("tags") is not None:
            md["tags"] = tuple(md["tags"])
        _REG.datasets[name] = DatasetSpec(name, loader, info.name, info.version, **md)
        info.datasets.append(name)

    return register


def _weights_register(info: PluginInfo, strict: bool) -> Callable[..., None]:
    def register(model: str, tag: str, **fields: Any) -> None:
        try:
            record = make_record(info.name, model, tag, fields)
        except ValueError as exc:
            return _refuse(info, str(exc), strict)
        spec = _REG.models.get(model)
        if spec is None:
            return _refuse(
                info,
                f"weights {model}.{tag} from plugin '{info.name}' are for an unknown model '{model}'"
                f"{suggest(model, _REG.models)}",
                strict,
            )
        existing = _REG.weights.get(record.name)
        if existing is None and spec.twin and any(r.tag == tag for r in twin_records(spec)):
            existing = next(r for r in twin_records(spec) if r.tag == tag)
        if existing is not None:
            return _refuse(
                info,
                f"weights '{record.name}' from plugin '{info.name}' are already registered by '{existing.source}'; "
                "the first registration is kept",
                strict,
            )
        _REG.weights[record.name] = record
        info.weights.append(record.name)

    return register


# ---------------------------------------------------------------------------------------------------------
# Plugins: in-process registration, for notebooks and tests
# ---------------------------------------------------------------------------------------------------------


def _in_process_info(module: str | None) -> PluginInfo:
    name = module or "__main__"
    info = _REG.plugins.get(name)
    if info is None:
        info = _REG.plugins[name] = PluginInfo(name=name, version=None, kind="in-process")
    return info


def register_model(
    name: str | None = None, *, override: bool = False, **metadata: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a builder from user code (a notebook, a script)::

        @zoo.register_model("tiny_cnn", family="cnn", input_size=(1, 28, 28), num_classes=10)
        def tiny_cnn(num_classes=10, in_chans=1, img_size=28, drop_rate=0.0): ...

    The name defaults to the function's name. A name that exists raises ``ValueError`` naming the plugin that
    owns it, unless ``override=True``.
    """

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        reg = ensure_loaded()
        with reg.lock:
            info = _in_process_info(getattr(builder, "__module__", None))
            _model_register(info, strict=True)(name or builder.__name__, builder, override=override, **metadata)
        return builder

    if callable(name):  # used bare: @zoo.register_model
        builder, name = name, None
        return decorator(builder)
    return decorator


def register_dataset(
    name: str, *, override: bool = False, **metadata: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a dataset loader from user code; see ``zoo.hookspecs.register_datasets``."""

    def decorator(loader: Callable[..., Any]) -> Callable[..., Any]:
        reg = ensure_loaded()
        with reg.lock:
            info = _in_process_info(getattr(loader, "__module__", None))
            _dataset_register(info, strict=True)(name, loader, override=override, **metadata)
        return loader

    return decorator


def register_weights(model: str, tag: str, **fields: Any) -> WeightsRecord:
    """Register weights from user code (a notebook, a script), as the ``register_weights`` hook's ``register``
    does; returns the record. A tag that exists or a model that does not raises ``ValueError`` naming both."""
    reg = ensure_loaded()
    with reg.lock:
        _weights_register(_in_process_info("__main__"), strict=True)(model, tag, **fields)
        return reg.weights[f"{model}.{tag}"]


def register_plugin(plugin: object, name: str | None = None) -> PluginInfo:
    """Load a plugin object (a module or any object with ``@zoo.hookimpl`` functions) now, as if discovered.

    Returns its row of ``zoo.plugins()``; a failure is reported there and as a warning, never raised.
    """
    name = name or _plugin_attr(plugin, "__name__") or type(plugin).__name__
    reg = ensure_loaded()
    with reg.lock:
        if name in reg.plugins:
            raise ValueError(f"a plugin named '{name}' is already loaded ({reg.plugins[name].kind})")
        reg.extra_plugins.append((plugin, name))
        try:
            _load_plugin(lambda: plugin, name, _plugin_attr(plugin, "__version__"), "in-process")
            _collect_weights(reg.plugins[name])
        except BaseException:  # the user's Ctrl-C: the plugin is not half registered
            unregister_plugin(name)
            raise
        return reg.plugins[name]


def unregister_plugin(name: str) -> None:
    """Remove a plugin and everything it registered."""
    reg = ensure_loaded()
    with reg.lock:
        reg.extra_plugins = [(p, n) for p, n in reg.extra_plugins if n != name]
        if reg.pm is not None and reg.pm.get_plugin(name) is not None:
            reg.pm.unregister(name=name)
        reg.plugins.pop(name, None)
        reg.models = {k: v for k, v in reg.models.items() if v.plugin != name}
        reg.datasets = {k: v for k, v in reg.datasets.items() if v.plugin != name}
        reg.sources = {k: v for k, v in reg.sources.items() if v.plugin != name}
        reg.weights = {k: v for k, v in reg.weights.items() if v.source != name and v.model in reg.models}
        reg.source_cache = {k: v for k, v in reg.source_cache.items() if v.plugin != name}


def reset() -> None:
    """Forget everything loaded; the next use of the registry discovers the plugins again."""
    with _REG.lock:
        if _REG.loading:  # plugin code, during discovery: the discovery would go on with emptied tables
            raise RuntimeError("zoo's registry cannot be reset while the plugins are being loaded")
        _REG.extra_plugins = []
        _REG.clear()


def plugins() -> list[PluginInfo]:
    """The plugins zoo loaded (or failed to load), in load order, with their versions and registrations."""
    return list(ensure_loaded().plugins.values())
