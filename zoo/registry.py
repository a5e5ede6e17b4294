"""The registry: lookup of models and datasets (``list_models``, ``get_spec``, ``info``) and ``create``.

What is registered comes from the plugins (``zoo.plugin_manager``: discovery, loading, validation); this module reads
their tables and builds models, checking the uniform keywords first. The plugin-facing names
(``register_model``, ``register_plugin``, ``plugins``, ...) live in ``zoo.plugin_manager``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import numbers
import threading
from typing import Any

from zoo.containment import Contained, OverBudget, PluginError, call_plugin, describe
from zoo.messages import short_repr, shorten
from zoo.plugin_manager import (
    ModelOptionError,
    ModelTooLargeError,
    Registry,
    UnknownDatasetError,
    UnknownModelError,
    ensure_loaded,
)
from zoo.pretrained import WeightsRecord, records_of, split_tag
from zoo.registration import MODEL_METADATA, UNIFORM_KEYWORDS, card_problem, make_model_spec, signature_keywords
from zoo.specs import DatasetSpec, ModelCard, ModelSpec, PluginInfo, SourceSpec
from zoo.suggest import closest, suggest

__all__ = [
    "get_spec",
    "get_dataset_spec",
    "list_models",
    "list_sources",
    "list_datasets",
    "accepted_keywords",
    "check_uniform_keywords",
    "create",
    "create_within",
    "count_params",
    "info",
    "list_weights",
    "weights_of",
]


# ---------------------------------------------------------------------------------------------------------
# Lookup
# ---------------------------------------------------------------------------------------------------------


def get_spec(name: str) -> ModelSpec:
    """The ``ModelSpec`` registered under ``name``; ``UnknownModelError`` with suggestions otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    reg = ensure_loaded()
    spec = reg.models.get(name)
    if spec is not None:
        return spec
    if "/" in name:
        return _source_spec(reg, name)
    hint = ""
    if reg.sources:
        hint = " (models of other libraries are named " + ", ".join(f"'{p}/<name>'" for p in reg.sources) + ")"
    bridged = [f"{prefix}/{name}" for prefix, source in reg.sources.items() if name in _source_names(source)]
    close = suggest(name, reg.models, n=3) or "; see zoo.list_models()"
    if bridged:  # another library has this very name: that is what the user meant
        close = f"; did you mean {' or '.join(repr(b) for b in bridged)}?"
    raise UnknownModelError(f"unknown model '{name}'{close}{hint}")


def _source_spec(reg: Registry, name: str) -> ModelSpec:
    if name in reg.source_cache:
        return reg.source_cache[name]
    prefix, sub = name.split("/", 1)
    source = reg.sources.get(prefix)
    if source is None:
        suggestions = [f"{s}/{sub}" for s in closest(prefix, reg.sources, n=3)]
        raise UnknownModelError(
            f"unknown model source '{prefix}' in '{name}'; sources: {', '.join(sorted(reg.sources)) or 'none'}"
            f"{suggest(name, suggestions, n=3)}"
        )
    who = f"source '{prefix}' (plugin '{source.plugin}')"
    try:
        builder, md = call_plugin(who, source.get_model, sub)
    except KeyError:
        suggestions = [f"{prefix}/{s}" for s in closest(sub, _source_names(source), n=3)]
        close = suggest(name, suggestions, n=3)
        raise UnknownModelError(f"unknown model '{name}' in source '{prefix}'{close}") from None
    except Contained as exc:
        raise PluginError(f"{name}: {who} raised {describe(exc)} when asked for the model") from None
    info = PluginInfo(name=source.plugin, version=source.plugin_version, kind="source")
    md = {k: v for k, v in md.items() if k in MODEL_METADATA}
    if card_problem(name, md):  # a source's malformed card figures are left off, not fatal
        md = {k: v for k, v in md.items() if k not in ("reported", "twin", "twin_kwargs")}
    spec = make_model_spec(name, builder, info, md)
    reg.source_cache[name] = spec
    return spec


def _source_names(source: SourceSpec) -> list[str]:
    """A source's names; a ``BaseException`` from its ``list_names`` becomes a ``PluginError``."""
    who = f"source '{source.prefix}' (plugin '{source.plugin}')"
    try:
        return list(call_plugin(who, source.list_names))
    except Contained as exc:
        raise PluginError(f"{who}: list_names raised {describe(exc)}") from None


def list_models(
    pattern: str | None = None,
    *,
    family: str | None = None,
    tag: str | None = None,
    source: str | None = None,
    pretrained: bool = False,
) -> list[str]:
    """Sorted registry names matching an fnmatch ``pattern`` (``"efficientnet_b*"``), a family and a tag.

    Args:
        pattern: shell-style wildcards, case-insensitive; ``None`` matches all.
        family: keep only this family (``"densenet"``).
        tag: keep only models carrying this tag.
        source: ``None`` lists zoo's own catalogue (built-ins and plugins) plus any source the pattern names
            (``"timm/*resnet*"``); ``"timm"`` or ``"torchvision"`` lists that source; ``"all"`` lists everything.
            Sources are only enumerated when asked for, so the default stays fast.
        pretrained: list the weights instead, as ``name.tag`` (``"lenet5.digits"``), of the models that have
            some; the pattern matches the model name or the ``name.tag``.
    """
    if pretrained:
        tagged = [r.name for r in list_weights(family=family, tag=tag, source=source)]
        pat = (pattern or "*").lower()
        return [n for n in tagged if fnmatch.fnmatchcase(n.lower(), pat) or fnmatch.fnmatchcase(n.split(".")[0], pat)]
    reg = ensure_loaded()
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


def list_weights(pattern: str | None = None, **filters: Any) -> list[WeightsRecord]:
    """The ``WeightsRecord`` of every tag of the models ``list_models(pattern, **filters)`` lists, by name."""
    reg = ensure_loaded()
    records = []
    for name in list_models(pattern, **filters):
        if "/" not in name:
            records.extend(records_of(reg.weights, reg.models[name]))
    return sorted(records, key=lambda r: r.name)


def weights_of(name: str) -> list[WeightsRecord]:
    """The weights registered for model ``name``: through the hook, then a torchvision twin's tags."""
    return records_of(ensure_loaded().weights, get_spec(name)) if "/" not in name else []


def list_sources() -> list[str]:
    """The prefixes of the registered sources (``["timm", "torchvision"]``)."""
    return sorted(ensure_loaded().sources)


def list_datasets(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered datasets."""
    names = list(ensure_loaded().datasets)
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower())]
    return sorted(names)


def get_dataset_spec(name: str) -> DatasetSpec:
    """The ``DatasetSpec`` registered under ``name``; ``UnknownDatasetError`` with suggestions otherwise."""
    reg = ensure_loaded()
    spec = reg.datasets.get(name)
    if spec is None:
        raise UnknownDatasetError(
            f"unknown dataset '{name}'; registered: {', '.join(sorted(reg.datasets))} (or pass a path to an image "
            f"folder){suggest(name, reg.datasets, n=3)}"
        )
    return spec


# ---------------------------------------------------------------------------------------------------------
# create / info / plugins
# ---------------------------------------------------------------------------------------------------------


def accepted_keywords(spec: ModelSpec) -> list[str] | None:
    """The keywords the builder accepts: those it declared at registration (``keywords=``, for ``**kwargs``
    builders) or those of its signature; ``None`` when it takes arbitrary ``**kwargs`` and declared none."""
    if spec.keywords is not None:
        return list(spec.keywords)
    return signature_keywords(spec.builder)


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
            f"{name}: there is no 'pretrained' keyword; pass weights=PATH (a .safetensors or torch.save state dict), "
            "weights=state_dict, or for a torchvision twin weights='DEFAULT' (read from torch's hub cache)"
        )
    accepted = accepted_keywords(spec)
    if accepted is not None:
        unknown = [k for k in kwargs if k not in accepted]
        if unknown:
            raise TypeError(
                f"{name}: unexpected keyword '{unknown[0]}'; accepted keywords: {', '.join(accepted)}"
                f"{suggest(unknown[0], accepted)}"
            )
    return spec, check_uniform_keywords(name, kwargs)


def _build(spec: ModelSpec, name: str, kwargs: dict[str, Any]):
    """Run the builder: its exceptions pass through, anything else it raises becomes a ``PluginError``."""
    import torch.nn as nn

    who = f"{name} (plugin '{spec.plugin}')"
    try:
        model = call_plugin(who, spec.builder, **kwargs)
    except Contained as exc:
        raise PluginError(
            f"{who}: the builder raised {describe(exc)}; zoo contained it (a builder must raise an Exception)"
        ) from None
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise TypeError(f"{name}: {exc}; every builder accepts {', '.join(UNIFORM_KEYWORDS)}, drop_rate") from exc
        raise
    if not isinstance(model, nn.Module):
        raise TypeError(f"builder of '{name}' (plugin '{spec.plugin}') returned {type(model).__name__}, not nn.Module")
    model.zoo_config = {"name": name, "kwargs": dict(kwargs)}
    return model


def create(
    name: str,
    *,
    weights: Any = None,
    download: bool = False,
    features_only: bool = False,
    out_indices: Any = None,
    **kwargs: Any,
):
    """Build the model registered under ``name``.

    Args:
        name: a registry name (``zoo.list_models()``), or ``"timm/<name>"`` / ``"torchvision/<name>"``; a name
            may carry a weights tag, timm's ``name.tag`` form (``"lenet5.digits"``; see
            ``zoo.list_models(pretrained=True)``).
        weights: optional; a tag of the model (``"digits"``, ``"tv_in1k"``: its registered weights, found offline
            first and checked against their sha256; their input record becomes ``zoo_config["inputs"]``); a state
            dict, or a path to one (``.safetensors``, or a ``torch.save`` file read with ``weights_only=True``), in
            this model's format or in its reference implementation's (converted by the family's
            ``convert_weights``); or, for a torchvision twin (its card has a ``torchvision`` row) and for
            ``torchvision/<name>``, torchvision weights: an enum member (``GoogLeNet_Weights.IMAGENET1K_V1``) or its
            name (``"GoogLeNet_Weights.IMAGENET1K_V1"``, ``"IMAGENET1K_V1"``, ``"DEFAULT"``), read from torch's hub
            cache. Those set the keywords torchvision sets with them (GoogLeNet's ``transform_input=True``) unless
            given, and their preprocessing (resize, centre crop, interpolation, mean/std, class names) becomes the
            model's ``pretrained_cfg``, which ``zoo.predict`` and ``zoo.evaluate`` use. Files are read before the
            model is built; one that is not a state dict is a ``CheckpointError`` naming it.
        download: fetch tagged or torchvision weights missing from every cache (into zoo's cache or torch's hub
            cache), checked against their hash. Without it nothing downloads, and missing weights are a
            ``FileNotFoundError`` saying where zoo looked.
        **kwargs: the builder's keywords; every builder takes ``num_classes``, ``in_chans``, ``img_size`` and
            ``drop_rate``, checked here for every model (``ModelOptionError``): ``num_classes`` an int >= 1 (0: no
            classifier head), ``in_chans`` an int >= 1, ``drop_rate`` a float in [0, 1), ``img_size`` an int >= 1
            or a pair ``(H, W)``; ``None`` keeps the builder's default.
        features_only: return timm's feature extractor instead (``zoo.features.FeatureListNet``): its forward
            gives the list of feature maps at ``out_indices`` (default all; negative count from the end), its
            ``feature_info.channels()`` / ``.reduction()`` describe them.

    Returns:
        The ``nn.Module``, with ``model.zoo_config = {"name": ..., "kwargs": ...}`` recording how it was made
        (checkpoints store it, so ``zoo.load`` can rebuild the model) and ``model.pretrained_cfg`` (timm's keys:
        ``input_size``, ``interpolation``, ``crop_pct``, ``crop_mode``, ``mean``, ``std``, ``num_classes``, plus
        ``resize_size``, ``label_names``, ``weights``) describing the input it expects.
    """
    from zoo.pretrained import attach_record, find_record, load_record, looks_like_tag
    from zoo.transfer import adapt_pretrained_cfg
    from zoo.weights import default_cfg, fit_weights, resolve_weights, set_pretrained_cfg

    if isinstance(name, str) and name.startswith("hf-hub:"):  # a Hugging Face repository (zoo.hub)
        from zoo.hub import create_from_hub

        return create_from_hub(name, weights=weights, download=download, **kwargs)

    name, weights = _tagged(name, weights)
    spec, kwargs = _prepare(name, kwargs)
    record = find_record(weights_of(name), spec, weights) if looks_like_tag(weights) else None
    cfg = None
    if weights is not None or download:
        if record is not None:
            state, cfg, implied = load_record(record, spec, download)
        else:
            state, cfg, implied = resolve_weights(weights, spec, download=download)
        if implied:
            kwargs = check_uniform_keywords(name, {**implied, **kwargs})  # the user's own keywords win
    model = _build(spec, name, kwargs)
    if weights is not None or download:
        report = fit_weights(model, state, spec)
        cfg = adapt_pretrained_cfg(cfg, kwargs, report) if cfg else cfg  # zoo.transfer: a new head, other inputs
    set_pretrained_cfg(model, cfg or default_cfg(spec, kwargs), keep=cfg is None)
    if record is not None:
        attach_record(model, record)
    if features_only or out_indices is not None:
        from zoo.features import create_features_only

        if not features_only:
            raise ValueError(f"out_indices={out_indices!r} selects features: pass features_only=True with it")
        return create_features_only(model, out_indices)
    return model


def _tagged(name: str, weights: Any) -> tuple[str, Any]:
    """``("lenet5", "digits")`` for ``create("lenet5.digits")`` (timm's ``name.tag``); a tag in the name and
    ``weights=`` together are refused."""
    if not isinstance(name, str):
        return name, weights
    models = ensure_loaded().models
    base, tag = split_tag(name, models.__contains__)
    if tag is None:
        return name, weights
    if weights is not None:
        raise TypeError(f"'{name}' names its weights (tag '{tag}'); drop weights={short_repr(weights, 40)}, or the tag")
    return base, tag


@contextlib.contextmanager
def _tensor_budget(max_numel: int, max_tensors: int):
    """Count the parameters and buffers modules register in this thread; past either bound, stop the build by
    raising ``OverBudget`` from the registration hook (before a parameter is initialised)."""
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
            raise OverBudget(seen["numel"], seen["tensors"])

    handles = [register_module_parameter_registration_hook(count), register_module_buffer_registration_hook(count)]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


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
    what = f"{name}({', '.join(f'{k}={short_repr(v, 40)}' for k, v in kwargs.items())})"
    numel_cap, tensor_cap = 4 * max_params + (1 << 26), 4 * max_tensors + 4096

    def too_large(numel: int, tensors: int, over_budget: bool) -> ModelTooLargeError:
        if not over_budget:
            size = f"{numel:,} parameters in {tensors:,} tensors"
        elif tensors > tensor_cap:
            size = f"more than {tensor_cap:,} parameter tensors"
        else:
            size = f"more than {numel_cap:,} parameters"
        return ModelTooLargeError(
            f"{shorten(what, 120)} builds {size}, more than the file holds ({max_params:,} parameters in "
            f"{max_tensors:,} tensors); refused before allocating it"
        )

    probe = None
    try:
        with torch.device("meta"), _tensor_budget(numel_cap, tensor_cap):
            probe = _build(spec, name, kwargs)
    except OverBudget as exc:
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
            model = _build(spec, name, kwargs)
    except OverBudget as exc:
        raise too_large(exc.numel, exc.tensors, True) from None
    from zoo.weights import default_cfg, set_pretrained_cfg

    set_pretrained_cfg(model, default_cfg(spec, kwargs), keep=True)
    return model


def count_params(name: str) -> int | None:
    """Parameter count of ``name`` at its defaults, built on the meta device (no memory, no init cost)."""
    reg = ensure_loaded()
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
    """The model card of ``name``: family, paper, year, default input, parameters at defaults, source plugin, and
    the published results (``reported``): for a torchvision twin first the acc@1/acc@5 of torchvision's default
    weights, read from torchvision's metadata now, then the figures the plugin declared from the paper."""
    from zoo.weights import twin_of, twin_reported

    spec = get_spec(name)
    twin = twin_of(spec)
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
        twin=twin,
        reported=(twin_reported(twin) if twin else ()) + spec.reported,
        weights=tuple(weights_of(name)),
    )
