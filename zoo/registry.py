"""The registry: plugin manager, discovery, model specs and cards; ``create``, ``list_models``, ``info``.

Plugins are loaded lazily, the first time the registry is used, in a fixed order: the built-ins (the model
families, the datasets, the timm/torchvision bridges), then entry-point plugins of the group ``zoo`` sorted by
name. Each plugin is loaded and called on its own, so that one failing plugin cannot take the rest down: its
failure becomes a warning and a ``failed`` row in ``zoo.plugins()``. The first registration of a name wins; a
later one is refused with a warning naming both plugins.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable
from importlib import metadata as importlib_metadata
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.hookspecs import PROJECT
from zoo.specs import DatasetSpec, ModelCard, ModelSpec, PluginInfo, SourceSpec

__all__ = [
    "ModelSpec",
    "ModelCard",
    "DatasetSpec",
    "PluginInfo",
    "UnknownModelError",
    "UnknownDatasetError",
    "ZooPluginWarning",
    "create",
    "list_models",
    "list_sources",
    "info",
    "plugins",
    "register_model",
    "register_dataset",
    "register_plugin",
    "unregister_plugin",
    "reset",
]

# Modules that register through the hooks exactly like a third-party plugin, loaded in this order.
BUILTIN_PLUGINS = (
    "zoo.models.mlp",
    "zoo.models.lenet",
    "zoo.models.alexnet",
    "zoo.models.googlenet",
    "zoo.models.densenet",
    "zoo.models.mobilenet",
    "zoo.models.efficientnet",
    "zoo.models.vit",
    "zoo.data.datasets",
    "zoo.bridges.timm",
    "zoo.bridges.torchvision",
)

UNIFORM_KEYWORDS = ("num_classes", "in_chans", "img_size")
MODEL_METADATA = (
    "family",
    "paper",
    "year",
    "input_size",
    "num_classes",
    "tags",
    "description",
    "url",
    "notes",
    "num_params",
    "convert_weights",
)
DATASET_METADATA = ("num_classes", "input_size", "description", "url", "tags")
SOURCE_METADATA = ("description", "url")
ENV_LOAD_PLUGINS = "ZOO_LOAD_PLUGINS"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


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


# ---------------------------------------------------------------------------------------------------------
# The registry state
# ---------------------------------------------------------------------------------------------------------


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.loaded = False
        self.pm: pluggy.PluginManager | None = None
        self.models: dict[str, ModelSpec] = {}
        self.datasets: dict[str, DatasetSpec] = {}
        self.sources: dict[str, SourceSpec] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self.extra_plugins: list[tuple[object, str]] = []  # registered by register_plugin() (tests, notebooks)
        self.source_cache: dict[str, ModelSpec] = {}
        self.param_cache: dict[str, int] = {}


_REG = _Registry()


def _zoo_version() -> str:
    from zoo import __version__

    return __version__


def _new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _ensure_loaded() -> _Registry:
    if _REG.loaded:
        return _REG
    with _REG.lock:
        if _REG.loaded:
            return _REG
        _REG.pm = _new_plugin_manager()
        version = _zoo_version()
        for modname in BUILTIN_PLUGINS:
            _load_plugin(lambda m=modname: importlib.import_module(m), modname, version, "builtin")
        for ep in _entry_points():
            _load_plugin(ep.load, ep.name, _ep_version(ep), "entry point")
        for obj, name in _REG.extra_plugins:
            _load_plugin(lambda o=obj: o, name, getattr(obj, "__version__", None), "in-process")
        _REG.loaded = True
    return _REG


def _entry_points() -> list[importlib_metadata.EntryPoint]:
    eps = {ep.name: ep for ep in importlib_metadata.entry_points(group=PROJECT)}
    wanted = os.environ.get(ENV_LOAD_PLUGINS)
    if wanted is not None:
        names = {n.strip() for n in wanted.split(",") if n.strip()}
        eps = {n: ep for n, ep in eps.items() if n in names or (ep.dist is not None and ep.dist.name in names)}
    return [eps[n] for n in sorted(eps)]


def _ep_version(ep: importlib_metadata.EntryPoint) -> str | None:
    return ep.dist.version if ep.dist is not None else None


def _load_plugin(load: Callable[[], object], name: str, version: str | None, kind: str) -> None:
    """Import one plugin, validate its hookimpls, and call its hooks; any failure is contained to it."""
    info = PluginInfo(name=name, version=version, kind=kind)
    _REG.plugins[name] = info
    assert _REG.pm is not None
    try:
        plugin = load()
        _validate_hookimpls(plugin, name)
        _REG.pm.register(plugin, name=name)
    except Exception as exc:  # a broken plugin must never take the others down
        _fail(info, f"{type(exc).__name__}: {exc}")
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
                impl.function(register=make_register(info, strict=False))
            except Exception as exc:
                _fail(info, f"{hook} raised {type(exc).__name__}: {exc}")


def _validate_hookimpls(plugin: object, name: str) -> None:
    known = {"register_models", "register_model_sources", "register_datasets"}
    for attr in dir(plugin):
        obj = getattr(plugin, attr, None)
        if callable(obj) and hasattr(obj, f"{PROJECT}_impl") and attr not in known:
            close = difflib.get_close_matches(attr, sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"unknown hook '{attr}'{hint}; zoo's hooks are {', '.join(sorted(known))}")


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


def _check_metadata(kind: str, metadata: dict[str, Any], accepted: tuple[str, ...]) -> str | None:
    unknown = sorted(set(metadata) - set(accepted))
    if unknown:
        return f"unknown {kind} metadata {', '.join(map(repr, unknown))}; accepted: {', '.join(accepted)}"
    return None


def _check_builder(name: str, builder: Any) -> str | None:
    if not callable(builder):
        return f"builder for '{name}' is not callable (got {type(builder).__name__})"
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return None  # builtins and C callables: accept, create() will tell
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    missing = [k for k in UNIFORM_KEYWORDS if k not in params]
    if missing:
        return (
            f"builder for '{name}' must accept the keywords {', '.join(UNIFORM_KEYWORDS)}; missing {', '.join(missing)}"
        )
    return None


def _make_model_spec(name: str, builder: Callable, info: PluginInfo, metadata: dict[str, Any]) -> ModelSpec:
    md = dict(metadata)
    if md.get("input_size") is not None:
        md["input_size"] = tuple(int(v) for v in md["input_size"])
    if md.get("tags") is not None:
        md["tags"] = (md["tags"],) if isinstance(md["tags"], str) else tuple(md["tags"])
    return ModelSpec(name=name, builder=builder, plugin=info.name, plugin_version=info.version, **md)


def _model_register(info: PluginInfo, strict: bool) -> Callable[..., None]:
    def register(name: str, builder: Callable[..., Any], **metadata: Any) -> None:
        override = metadata.pop("override", False) if strict else False
        problem = None
        if not isinstance(name, str) or not _NAME_RE.match(name):
            problem = f"invalid model name {name!r}: use letters, digits, '_', '-', '.' (no '/')"
        problem = problem or _check_builder(name, builder) or _check_metadata("model", metadata, MODEL_METADATA)
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
        _REG.models[name] = _make_model_spec(name, builder, info, metadata)
        _REG.param_cache.pop(name, None)
        if name not in info.models:
            info.models.append(name)

    return register


def _source_register(info: PluginInfo, strict: bool) -> Callable[..., None]:
    def register(prefix: str, list_names: Callable, get_model: Callable, **metadata: Any) -> None:
        problem = None
        if not isinstance(prefix, str) or not _NAME_RE.match(prefix):
            problem = f"invalid source prefix {prefix!r}"
        elif not callable(list_names) or not callable(get_model):
            problem = f"source '{prefix}': list_names and get_model must be callables"
        problem = problem or _check_metadata("source", metadata, SOURCE_METADATA)
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
        if not isinstance(name, str) or not _NAME_RE.match(name):
            problem = f"invalid dataset name {name!r}"
        elif not callable(loader):
            problem = f"loader for dataset '{name}' is not callable (got {type(loader).__name__})"
        problem = problem or _check_metadata("dataset", metadata, DATASET_METADATA)
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
        reg = _ensure_loaded()
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
        reg = _ensure_loaded()
        with reg.lock:
            info = _in_process_info(getattr(loader, "__module__", None))
            _dataset_register(info, strict=True)(name, loader, override=override, **metadata)
        return loader

    return decorator


def register_plugin(plugin: object, name: str | None = None) -> PluginInfo:
    """Load a plugin object (a module or any object with ``@zoo.hookimpl`` functions) now, as if discovered.

    Returns its row of ``zoo.plugins()``; a failure is reported there and as a warning, never raised.
    """
    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    reg = _ensure_loaded()
    with reg.lock:
        if name in reg.plugins:
            raise ValueError(f"a plugin named '{name}' is already loaded ({reg.plugins[name].kind})")
        reg.extra_plugins.append((plugin, name))
        _load_plugin(lambda: plugin, name, getattr(plugin, "__version__", None), "in-process")
        return reg.plugins[name]


def unregister_plugin(name: str) -> None:
    """Remove a plugin and everything it registered."""
    reg = _ensure_loaded()
    with reg.lock:
        reg.extra_plugins = [(p, n) for p, n in reg.extra_plugins if n != name]
        if reg.pm is not None and reg.pm.get_plugin(name) is not None:
            reg.pm.unregister(name=name)
        reg.plugins.pop(name, None)
        reg.models = {k: v for k, v in reg.models.items() if v.plugin != name}
        reg.datasets = {k: v for k, v in reg.datasets.items() if v.plugin != name}
        reg.sources = {k: v for k, v in reg.sources.items() if v.plugin != name}
        reg.source_cache = {k: v for k, v in reg.source_cache.items() if v.plugin != name}


def reset() -> None:
    """Forget everything loaded; the next use of the registry discovers the plugins again."""
    with _REG.lock:
        _REG.__init__()  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------------------
# Lookup
# ---------------------------------------------------------------------------------------------------------


def _suggest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    if not close:
        close = [c for c in lowered if name.lower() in c][:n]
    return [lowered[c] for c in close]


def _did_you_mean(suggestions: list[str]) -> str:
    if not suggestions:
        return ""
    return " did you mean " + " or ".join(f"'{s}'" for s in suggestions) + "?"


def get_spec(name: str) -> ModelSpec:
    """The ``ModelSpec`` registered under ``name``; ``UnknownModelError`` with suggestions otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    reg = _ensure_loaded()
    spec = reg.models.get(name)
    if spec is not None:
        return spec
    if "/" in name:
        return _source_spec(reg, name)
    suggestions = _suggest(name, reg.models)
    hint = ""
    if reg.sources:
        hint = " (models of other libraries are named " + ", ".join(f"'{p}/<name>'" for p in reg.sources) + ")"
    raise UnknownModelError(f"unknown model '{name}';{_did_you_mean(suggestions) or ' see zoo.list_models()'}{hint}")


def _source_spec(reg: _Registry, name: str) -> ModelSpec:
    if name in reg.source_cache:
        return reg.source_cache[name]
    prefix, sub = name.split("/", 1)
    source = reg.sources.get(prefix)
    if source is None:
        suggestions = _suggest(prefix, reg.sources)
        raise UnknownModelError(
            f"unknown model source '{prefix}' in '{name}'; sources: {', '.join(sorted(reg.sources)) or 'none'}."
            f"{_did_you_mean([s + '/' + sub for s in suggestions])}"
        )
    try:
        builder, md = source.get_model(sub)
    except KeyError:
        suggestions = [f"{prefix}/{s}" for s in _suggest(sub, source.list_names())]
        raise UnknownModelError(f"unknown model '{name}' in source '{prefix}';{_did_you_mean(suggestions)}") from None
    info = PluginInfo(name=source.plugin, version=source.plugin_version, kind="source")
    md = {k: v for k, v in md.items() if k in MODEL_METADATA}
    spec = _make_model_spec(name, builder, info, md)
    reg.source_cache[name] = spec
    return spec


def list_models(
    pattern: str | None = None,
    *,
    family: str | None = None,
    tag: str | None = None,
    source: str | None = None,
) -> list[str]:
    """Sorted registry names matching an fnmatch ``pattern`` (``"efficientnet_b*"``), a family and a tag.

    Args:
        pattern: shell-style wildcards, case-insensitive; ``None`` matches all.
        family: keep only this family (``"densenet"``).
        tag: keep only models carrying this tag.
        source: ``None`` lists zoo's own catalogue (built-ins and plugins) plus any source the pattern names
            (``"timm/*resnet*"``); ``"timm"`` or ``"torchvision"`` lists that source; ``"all"`` lists everything.
            Sources are only enumerated when asked for, so the default stays fast.
    """
    reg = _ensure_loaded()
    names: list[str] = []
    if source is None:
        sources = [p for p in reg.sources if pattern and pattern.lower().startswith(p.lower() + "/")]
        include_own = True
    elif source == "all":
        sources, include_own = list(reg.sources), True
    elif source == "zoo":
        sources, include_own = [], True
    elif source in reg.sources:
        sources, include_own = [source], False
    else:
        valid = ["zoo", "all", *sorted(reg.sources)]
        raise ValueError(f"unknown source '{source}'; accepted: {', '.join(valid)}")
    if include_own:
        names.extend(reg.models)
    for prefix in sources:
        names.extend(f"{prefix}/{n}" for n in reg.sources[prefix].list_names())
    if pattern:
        pat = pattern.lower()
        if source is not None and source not in ("all", "zoo") and "/" not in pat:
            pat = f"{source}/{pat}"  # `zoo list --source timm "resnet*"` means timm/resnet*
        names = [n for n in names if fnmatch.fnmatchcase(n.lower(), pat)]
    if family is not None or tag is not None:
        kept = []
        for n in names:
            spec = reg.models.get(n)
            if spec is None:  # source models are described lazily; filters by family/tag need their specs
                try:
                    spec = get_spec(n)
                except Exception:
                    continue
            if family is not None and (spec.family or "").lower() != family.lower():
                continue
            if tag is not None and tag not in spec.tags:
                continue
            kept.append(n)
        names = kept
    return sorted(set(names))


def list_sources() -> list[str]:
    """The prefixes of the registered sources (``["timm", "torchvision"]``)."""
    return sorted(_ensure_loaded().sources)


def list_datasets(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered datasets."""
    names = list(_ensure_loaded().datasets)
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower())]
    return sorted(names)


def get_dataset_spec(name: str) -> DatasetSpec:
    """The ``DatasetSpec`` registered under ``name``; ``UnknownDatasetError`` with suggestions otherwise."""
    reg = _ensure_loaded()
    spec = reg.datasets.get(name)
    if spec is None:
        suggestions = _suggest(name, reg.datasets)
        raise UnknownDatasetError(
            f"unknown dataset '{name}';{_did_you_mean(suggestions)} registered: {', '.join(sorted(reg.datasets))}"
            " (or pass a path to an image folder)"
        )
    return spec


# ---------------------------------------------------------------------------------------------------------
# create / info / plugins
# ---------------------------------------------------------------------------------------------------------


def accepted_keywords(spec: ModelSpec) -> list[str] | None:
    """The keywords the builder accepts by name, or ``None`` when it takes arbitrary ``**kwargs``."""
    try:
        params = inspect.signature(spec.builder).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [n for n, p in params.items() if p.kind in kinds]


def create(name: str, *, weights: Any = None, **kwargs: Any):
    """Build the model registered under ``name``.

    Args:
        name: a registry name (``zoo.list_models()``), or ``"timm/<name>"`` / ``"torchvision/<name>"``.
        weights: optional state dict, or path to one (``.safetensors``, or a ``torch.save`` file read with
            ``weights_only=True``), in this model's format or in its reference implementation's format
            (converted by the family's ``convert_weights``). Nothing is downloaded.
        **kwargs: the builder's keywords; every builder takes ``num_classes``, ``in_chans``, ``img_size`` and
            ``drop_rate``.

    Returns:
        The ``nn.Module``, with ``model.zoo_config = {"name": ..., "kwargs": ...}`` recording how it was made
        (checkpoints store it, so ``zoo.load`` can rebuild the model).
    """
    import torch.nn as nn

    spec = get_spec(name)
    if "pretrained" in kwargs:
        raise TypeError(
            f"{name}: zoo downloads no weights, so there is no 'pretrained' keyword; pass weights=PATH "
            "(a .safetensors or torch.save state dict) or weights=state_dict"
        )
    accepted = accepted_keywords(spec)
    if accepted is not None:
        unknown = [k for k in kwargs if k not in accepted]
        if unknown:
            close = _suggest(unknown[0], accepted, n=1)
            raise TypeError(
                f"{name}: unexpected keyword '{unknown[0]}'; accepted keywords: {', '.join(accepted)}."
                f"{_did_you_mean(close)}"
            )
    try:
        model = spec.builder(**kwargs)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise TypeError(f"{name}: {exc}; every builder accepts {', '.join(UNIFORM_KEYWORDS)}, drop_rate") from exc
        raise
    if not isinstance(model, nn.Module):
        raise TypeError(f"builder of '{name}' (plugin '{spec.plugin}') returned {type(model).__name__}, not nn.Module")
    if weights is not None:
        load_weights(model, weights, spec)
    model.zoo_config = {"name": name, "kwargs": dict(kwargs)}
    return model


def load_weights(model, weights: Any, spec: ModelSpec | None = None) -> None:
    """Load a state dict (or a path to one) into ``model``, converting a reference format if needed."""
    import torch

    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.exists(path):
            hint = ""
            if spec is not None and "/" in spec.name and os.sep not in path and "." not in path:
                hint = (
                    f"; '{path}' looks like a pretrained tag: zoo downloads nothing, so download the weights with "
                    f"{spec.source} yourself and pass the file's path (see docs/bridges.md)"
                )
            raise FileNotFoundError(f"weights file '{path}' does not exist{hint}")
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise ValueError(
                    f"cannot read weights from '{path}': {type(exc).__name__}: {str(exc).splitlines()[0]}; "
                    "expected a .safetensors file or a torch.save'd state dict of tensors"
                ) from exc
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]  # a zoo checkpoint
    elif isinstance(weights, dict):
        state = weights
    else:
        raise TypeError(f"weights must be a state dict or a path, got {type(weights).__name__}")
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    own = set(model.state_dict())
    if set(state) != own and spec is not None and spec.convert_weights is not None:
        state = spec.convert_weights(state)
    missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
    if missing or unexpected:
        name = spec.name if spec else type(model).__name__
        raise ValueError(
            f"weights do not fit '{name}': {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
        )
    model.load_state_dict(state, strict=True)


def count_params(name: str) -> int | None:
    """Parameter count of ``name`` at its defaults, built on the meta device (no memory, no init cost)."""
    reg = _ensure_loaded()
    if name in reg.param_cache:
        return reg.param_cache[name]
    import torch

    spec = get_spec(name)
    if spec.num_params is not None:  # declared by the plugin; zoo.testing checks that it holds
        reg.param_cache[name] = spec.num_params
        return spec.num_params
    try:
        with torch.device("meta"):
            model = spec.builder()
    except Exception:
        try:
            model = spec.builder()
        except Exception:
            return None
    n = sum(p.numel() for p in model.parameters())
    reg.param_cache[name] = n
    return n


def info(name: str) -> ModelCard:
    """The model card of ``name``: family, paper, year, default input, parameters at defaults, source plugin."""
    spec = get_spec(name)
    return ModelCard(
        name=spec.name,
        family=spec.family,
        paper=spec.paper,
        year=spec.year,
        input_size=spec.input_size,
        num_classes=spec.num_classes,
        num_params=count_params(name),
        plugin=spec.plugin,
        plugin_version=spec.plugin_version,
        tags=spec.tags,
        description=spec.description,
        url=spec.url,
        notes=spec.notes,
    )


def plugins() -> list[PluginInfo]:
    """The plugins zoo loaded (or failed to load), in load order, with their versions and registrations."""
    return list(_ensure_loaded().plugins.values())
