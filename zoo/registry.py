"""The registry: plugin manager, discovery, model specs and cards; ``create``, ``list_models``, ``info``.

Plugins are loaded lazily, the first time the registry is used, in a fixed order: the built-ins (the model
families, the datasets, the timm/torchvision bridges), then entry-point plugins of the group ``zoo`` sorted by
name. Each plugin is loaded and called on its own, so that one failing plugin cannot take the rest down: its
failure becomes a warning and a ``failed`` row in ``zoo.plugins()``. The first registration of a name wins; a
later one is refused with a warning naming both plugins.

Plugin code (imports, hooks, builders, sources, ``convert_weights``) may raise anything, ``SystemExit`` and
``KeyboardInterrupt`` included: what it raises is contained like any other failure (see ``call_plugin``). Only
a Ctrl-C the user really pressed, told apart by watching SIGINT while the plugin runs, still stops the program.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import importlib
import inspect
import math
import numbers
import os
import re
import signal
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
    "ModelOptionError",
    "ModelTooLargeError",
    "PluginError",
    "ZooPluginWarning",
    "create",
    "create_within",
    "check_uniform_keywords",
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


class ModelOptionError(ValueError, TypeError):
    """A uniform builder keyword (``num_classes``, ``in_chans``, ``drop_rate``, ``img_size``) has a bad value or type.

    Both a ``ValueError`` and a ``TypeError``, so that either ``except`` clause catches it."""


class ModelTooLargeError(ValueError):
    """``create_within`` refused a model with more parameters than it was allowed (a checkpoint's own weights)."""


class PluginError(RuntimeError):
    """Plugin code raised something that is not an ``Exception`` (``SystemExit``, ``KeyboardInterrupt`` raised by
    the code itself, ...); zoo contained it. The message names the plugin."""


# ---------------------------------------------------------------------------------------------------------
# The registry state
# ---------------------------------------------------------------------------------------------------------


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.extra_plugins: list[tuple[object, str]] = []  # registered by register_plugin() (tests, notebooks)
        self.clear()

    def clear(self) -> None:
        """Forget what was discovered (not the lock, not the in-process plugins, which load again)."""
        self.loaded = False
        self.pm: pluggy.PluginManager | None = None
        self.models: dict[str, ModelSpec] = {}
        self.datasets: dict[str, DatasetSpec] = {}
        self.sources: dict[str, SourceSpec] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self.source_cache: dict[str, ModelSpec] = {}
        self.param_cache: dict[str, int] = {}


_REG = _Registry()


def _zoo_version() -> str:
    from zoo.version import __version__

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
        try:
            for modname in BUILTIN_PLUGINS:
                _load_plugin(lambda m=modname: importlib.import_module(m), modname, version, "builtin")
            for ep in _entry_points():
                _load_plugin(ep.load, ep.name, _ep_version(ep), "entry point")
            for obj, name in _REG.extra_plugins:
                _load_plugin(lambda o=obj: o, name, _plugin_attr(obj, "__version__"), "in-process")
        except BaseException:  # the user's Ctrl-C: leave nothing half-discovered behind; the next use starts over
            _REG.clear()
            raise
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


# ---------------------------------------------------------------------------------------------------------
# Running plugin code: whatever it raises is contained, except the user's own Ctrl-C
# ---------------------------------------------------------------------------------------------------------


class _Contained(Exception):
    """Plugin code raised a ``BaseException`` that is not an ``Exception``; it travels wrapped in this."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(original)
        self.original = original


class _OverBudget(BaseException):
    """``_tensor_budget`` stops a build. A ``BaseException``, so that a builder's ``except Exception`` cannot swallow
    it and build on."""

    def __init__(self, numel: int, tensors: int) -> None:
        super().__init__(numel, tensors)
        self.numel, self.tensors = numel, tensors


class _SigintWatch:
    """Tells a ``KeyboardInterrupt`` that a SIGINT delivered (the user pressed Ctrl-C) from one that plugin code
    raised itself: while plugin code runs in the main thread, the SIGINT handler is wrapped so that it notes the
    delivery before doing what it did. Signals reach only the main thread, so elsewhere nothing is delivered."""

    def __init__(self) -> None:
        self.delivered = False
        self.default = False  # the handler was Python's own, which raises KeyboardInterrupt
        self._previous: Any = None

    def __enter__(self) -> _SigintWatch:
        if threading.current_thread() is not threading.main_thread():
            return self
        try:
            previous = signal.getsignal(signal.SIGINT)
            if not callable(previous):  # SIG_IGN, SIG_DFL or not set from Python: nothing is raised from a signal
                return self

            def note_delivery(signum: int, frame: Any) -> Any:
                self.delivered = True
                return previous(signum, frame)

            signal.signal(signal.SIGINT, note_delivery)
        except (ValueError, OSError, RuntimeError):  # no signals here (a sub-interpreter, an embedding host)
            return self
        self._previous = previous
        self.default = previous is signal.default_int_handler
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            with contextlib.suppress(ValueError, OSError, RuntimeError):
                signal.signal(signal.SIGINT, self._previous)


def call_plugin(who: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call plugin code. ``Exception`` passes through; any other ``BaseException`` it raises (``SystemExit``,
    ``KeyboardInterrupt``, ``GeneratorExit``, its own subclasses) comes out wrapped in ``_Contained``, for the
    caller to report like any failure. After a SIGINT was delivered while it ran, what the handler raised goes on
    (with a note naming ``who``); with Python's own handler a Ctrl-C always ends as ``KeyboardInterrupt``, even if
    the plugin swallowed it or turned it into an error."""
    watch = _SigintWatch()
    with watch:
        try:
            result = fn(*args, **kwargs)
        except _OverBudget:
            raise
        except BaseException as exc:
            if watch.delivered and not isinstance(exc, Exception):  # what the SIGINT handler raised: let it go on
                exc.add_note(f"zoo: interrupted while {who} ran")
                raise
            if watch.delivered and watch.default:  # the plugin turned the user's Ctrl-C into an error
                interrupt = KeyboardInterrupt()
                interrupt.add_note(f"zoo: interrupted while {who} ran")
                raise interrupt from exc
            if isinstance(exc, Exception):
                raise
            raise _Contained(exc) from exc
    if watch.delivered and watch.default:  # the plugin caught the user's Ctrl-C and carried on
        interrupt = KeyboardInterrupt()
        interrupt.add_note(f"zoo: interrupted while {who} ran")
        raise interrupt
    return result


def run_plugin(who: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``call_plugin`` for callers outside the registry: a contained ``BaseException`` becomes a one-line
    ``PluginError`` naming ``who`` (an ``Exception`` passes through as it is)."""
    try:
        return call_plugin(who, fn, *args, **kwargs)
    except _Contained as exc:
        raise PluginError(f"{who} raised {_describe(exc)}; zoo contained it") from None


def _describe(exc: BaseException) -> str:
    """``"Type: first line"`` of an exception, safe against messages that raise or run over many lines."""
    if isinstance(exc, _Contained):
        exc = exc.original
    try:
        text = call_plugin("str() of a plugin's exception", str, exc)
        text = text if isinstance(text, str) else ""
    except Exception:
        text = ""
    text = "; ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _load_plugin(load: Callable[[], object], name: str, version: str | None, kind: str) -> None:
    """Import one plugin, validate its hookimpls, and call its hooks; any failure is contained to it."""
    info = PluginInfo(name=name, version=version, kind=kind)
    _REG.plugins[name] = info
    who = f"plugin '{name}'"
    try:
        call_plugin(who, _import_plugin, load, name)
    except Exception as exc:  # a broken plugin must never take the others down
        _fail(info, _describe(exc))
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
                _fail(info, f"{hook} raised {_describe(exc)}")


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
    name = name or _plugin_attr(plugin, "__name__") or type(plugin).__name__
    reg = _ensure_loaded()
    with reg.lock:
        if name in reg.plugins:
            raise ValueError(f"a plugin named '{name}' is already loaded ({reg.plugins[name].kind})")
        reg.extra_plugins.append((plugin, name))
        try:
            _load_plugin(lambda: plugin, name, _plugin_attr(plugin, "__version__"), "in-process")
        except BaseException:  # the user's Ctrl-C: the plugin is not half registered
            unregister_plugin(name)
            raise
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
        _REG.extra_plugins = []
        _REG.clear()


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
    who = f"source '{prefix}' (plugin '{source.plugin}')"
    try:
        builder, md = call_plugin(who, source.get_model, sub)
    except KeyError:
        suggestions = [f"{prefix}/{s}" for s in _suggest(sub, _source_names(source))]
        raise UnknownModelError(f"unknown model '{name}' in source '{prefix}';{_did_you_mean(suggestions)}") from None
    except _Contained as exc:
        raise PluginError(f"{name}: {who} raised {_describe(exc)} when asked for the model") from None
    info = PluginInfo(name=source.plugin, version=source.plugin_version, kind="source")
    md = {k: v for k, v in md.items() if k in MODEL_METADATA}
    spec = _make_model_spec(name, builder, info, md)
    reg.source_cache[name] = spec
    return spec


def _source_names(source: SourceSpec) -> list[str]:
    """A source's names; a ``BaseException`` from its ``list_names`` becomes a ``PluginError``."""
    who = f"source '{source.prefix}' (plugin '{source.plugin}')"
    try:
        return list(call_plugin(who, source.list_names))
    except _Contained as exc:
        raise PluginError(f"{who}: list_names raised {_describe(exc)}") from None


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
        names.extend(f"{prefix}/{n}" for n in _source_names(reg.sources[prefix]))
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


# ---- uniform keywords ----------------------------------------------------------------------------------

_ACCEPTED = {
    "num_classes": "an int >= 1, or 0 for no classifier head (the pooled features)",
    "in_chans": "an int >= 1",
    "drop_rate": "a float in [0, 1)",
    "img_size": "an int >= 1 or a pair of them (H, W)",
}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _uniform_value(key: str, value: Any) -> Any:
    """The value of a uniform keyword as a plain ``int``/``float``/pair, or ``None`` when it is not accepted."""
    if key in ("num_classes", "in_chans"):
        low = 0 if key == "num_classes" else 1
        return int(value) if _is_int(value) and value >= low else None
    if key == "drop_rate":
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            return None
        rate = float(value)
        return rate if math.isfinite(rate) and 0.0 <= rate < 1.0 else None
    if _is_int(value):  # img_size
        return int(value) if value >= 1 else None
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) and v >= 1 for v in value):
        return (int(value[0]), int(value[1]))
    return None


def check_uniform_keywords(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Validate the uniform builder keywords once, for every model (built-in, plugin or source), before its builder
    runs; returns ``kwargs`` with them as plain ``int``/``float``/``(H, W)`` and those set to ``None`` dropped
    (``None`` keeps the builder's default). Raises ``ModelOptionError`` naming the keyword, its value and what is
    accepted. Bools are not counts, strings are not sizes."""
    out = {}
    for key, value in kwargs.items():
        if key in _ACCEPTED and value is None:
            continue
        if key in _ACCEPTED:
            checked = _uniform_value(key, value)
            if checked is None:
                raise ModelOptionError(f"{name}: bad {key}={value!r}; accepted: {_ACCEPTED[key]}")
            value = checked
        out[key] = value
    return out


# ---- create --------------------------------------------------------------------------------------------


def _prepare(name: str, kwargs: dict[str, Any]) -> tuple[ModelSpec, dict[str, Any]]:
    """Look ``name`` up and check the keywords: everything ``create`` refuses before its builder runs."""
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
    return spec, check_uniform_keywords(name, kwargs)


def _build(spec: ModelSpec, name: str, kwargs: dict[str, Any]):
    """Run the builder: its exceptions pass through, anything else it raises becomes a ``PluginError``."""
    import torch.nn as nn

    who = f"{name} (plugin '{spec.plugin}')"
    try:
        model = call_plugin(who, spec.builder, **kwargs)
    except _Contained as exc:
        raise PluginError(
            f"{who}: the builder raised {_describe(exc)}; zoo contained it (a builder must raise an Exception)"
        ) from None
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise TypeError(f"{name}: {exc}; every builder accepts {', '.join(UNIFORM_KEYWORDS)}, drop_rate") from exc
        raise
    if not isinstance(model, nn.Module):
        raise TypeError(f"builder of '{name}' (plugin '{spec.plugin}') returned {type(model).__name__}, not nn.Module")
    model.zoo_config = {"name": name, "kwargs": dict(kwargs)}
    return model


def create(name: str, *, weights: Any = None, **kwargs: Any):
    """Build the model registered under ``name``.

    Args:
        name: a registry name (``zoo.list_models()``), or ``"timm/<name>"`` / ``"torchvision/<name>"``.
        weights: optional state dict, or path to one (``.safetensors``, or a ``torch.save`` file read with
            ``weights_only=True``), in this model's format or in its reference implementation's format
            (converted by the family's ``convert_weights``). Nothing is downloaded. A file is read before the
            model is built; one that is not a state dict is a ``CheckpointError`` naming it.
        **kwargs: the builder's keywords; every builder takes ``num_classes``, ``in_chans``, ``img_size`` and
            ``drop_rate``, checked here for every model (``ModelOptionError``): ``num_classes`` an int >= 1 (0: no
            classifier head), ``in_chans`` an int >= 1, ``drop_rate`` a float in [0, 1), ``img_size`` an int >= 1
            or a pair ``(H, W)``; ``None`` keeps the builder's default.

    Returns:
        The ``nn.Module``, with ``model.zoo_config = {"name": ..., "kwargs": ...}`` recording how it was made
        (checkpoints store it, so ``zoo.load`` can rebuild the model).
    """
    spec, kwargs = _prepare(name, kwargs)
    state = _weights_state(weights, spec) if weights is not None else None
    model = _build(spec, name, kwargs)
    if state is not None:
        _fit_weights(model, state, spec)
    return model


@contextlib.contextmanager
def _tensor_budget(max_numel: int, max_tensors: int):
    """Count the parameters and buffers modules register in this thread; past either bound, stop the build by
    raising ``_OverBudget`` from the registration hook (before a parameter is initialised)."""
    from torch.nn.modules.module import (
        register_module_buffer_registration_hook,
        register_module_parameter_registration_hook,
    )

    me = threading.get_ident()
    seen = {"numel": 0, "tensors": 0}

    def count(module: Any, key: str, tensor: Any) -> None:
        if tensor is None or threading.get_ident() != me:
            return
        seen["numel"] += tensor.numel()
        seen["tensors"] += 1
        if seen["numel"] > max_numel or seen["tensors"] > max_tensors:
            raise _OverBudget(seen["numel"], seen["tensors"])

    handles = [register_module_parameter_registration_hook(count), register_module_buffer_registration_hook(count)]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(value: Any, limit: int = 80) -> str:
    return _shorten(repr(value), limit)


def create_within(name: str, kwargs: dict[str, Any], *, max_params: int, max_tensors: int):
    """``create(name, **kwargs)`` for a configuration read from a file: refused with ``ModelTooLargeError`` when the
    model would have more than ``max_params`` parameters in more than ``max_tensors`` tensors, before it is
    allocated.

    The model is built on the meta device first (no memory) and counted. While it builds, a registration hook
    stops any build that runs far past the bounds, so a config asking for a billion layers ends early too. A
    builder that cannot run on the meta device is built for real under the same hook, which refuses a tensor
    before it is initialised.
    """
    import torch

    spec, kwargs = _prepare(name, kwargs)
    what = f"{name}({', '.join(f'{k}={_short(v, 40)}' for k, v in kwargs.items())})"
    numel_cap, tensor_cap = 4 * max_params + (1 << 26), 4 * max_tensors + 4096

    def too_large(numel: int, tensors: int, over_budget: bool) -> ModelTooLargeError:
        if not over_budget:
            size = f"{numel:,} parameters in {tensors:,} tensors"
        elif tensors > tensor_cap:
            size = f"more than {tensor_cap:,} parameter tensors"
        else:
            size = f"more than {numel_cap:,} parameters"
        return ModelTooLargeError(
            f"{_shorten(what, 120)} builds {size}, more than the file holds ({max_params:,} parameters in "
            f"{max_tensors:,} tensors); refused before allocating it"
        )

    probe = None
    try:
        with torch.device("meta"), _tensor_budget(numel_cap, tensor_cap):
            probe = _build(spec, name, kwargs)
    except _OverBudget as exc:
        raise too_large(exc.numel, exc.tensors, True) from None
    except PluginError:
        raise
    except Exception:
        probe = None  # the builder cannot run on the meta device; the real build below is bounded as well
    if probe is not None:
        params = list(probe.parameters())
        numel = sum(p.numel() for p in params)
        if numel > max_params or len(params) > max_tensors:
            raise too_large(numel, len(params), False)
        del probe, params
    try:
        with _tensor_budget(numel_cap, tensor_cap):
            return _build(spec, name, kwargs)
    except _OverBudget as exc:
        raise too_large(exc.numel, exc.tensors, True) from None


# ---- weights -------------------------------------------------------------------------------------------


def _weights_state(weights: Any, spec: ModelSpec | None = None) -> dict[str, Any]:
    """The state dict ``weights`` means: read from a path (``CheckpointError`` naming an unreadable file) or
    checked in memory (``ValueError``)."""
    from zoo.train.state import read_state_dict, state_dict_problem

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
        return read_state_dict(path)
    if isinstance(weights, dict):
        if isinstance(weights.get("model"), dict):
            weights = weights["model"]  # a zoo checkpoint, loaded by the caller
        problem = state_dict_problem(weights)
        if problem:
            raise ValueError(f"weights are not a state dict: {problem}")
        return weights
    raise TypeError(f"weights must be a state dict or a path, got {type(weights).__name__}")


def _fit_weights(model, state: dict[str, Any], spec: ModelSpec | None) -> None:
    from zoo.train.state import clean_state_dict, state_dict_problem

    name = spec.name if spec else type(model).__name__
    state = clean_state_dict(state)
    own = set(model.state_dict())
    if set(state) != own and spec is not None and spec.convert_weights is not None:
        try:
            state = call_plugin(f"plugin '{spec.plugin}'", spec.convert_weights, state)
        except Exception as exc:
            raise ValueError(
                f"weights for '{name}': convert_weights of plugin '{spec.plugin}' failed: {_describe(exc)}"
            ) from None
        problem = state_dict_problem(state) if isinstance(state, dict) else f"it returned a {type(state).__name__}"
        if problem:
            raise ValueError(f"weights for '{name}': convert_weights of plugin '{spec.plugin}': {problem}")
    missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
    if missing or unexpected:
        raise ValueError(
            f"weights do not fit '{name}': {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # size mismatches: torch lists them one per line
        lines = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise ValueError(f"weights do not fit '{name}': {(lines or [_describe(exc)])[0]}{more}") from None


def load_weights(model, weights: Any, spec: ModelSpec | None = None) -> None:
    """Load a state dict (or a path to one) into ``model``, converting a reference format if needed."""
    _fit_weights(model, _weights_state(weights, spec), spec)


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
    who = f"{name} (plugin '{spec.plugin}')"
    try:
        with torch.device("meta"):
            model = call_plugin(who, spec.builder)
    except Exception:
        try:
            model = call_plugin(who, spec.builder)
        except Exception:
            return None
    try:
        n = sum(p.numel() for p in model.parameters())
    except Exception:  # not a module: create() says so
        return None
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
