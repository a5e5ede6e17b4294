"""Weights: reading state dicts and weight files, fitting them to a model, and torchvision's published weights.

What ``zoo.create(name, weights=...)`` accepts:

- a state dict (or a ``{"model": state_dict}`` checkpoint dict), in the model's format or its reference
  implementation's (converted by the family's ``convert_weights``); ``_orig_mod.``/``module.`` prefixes dropped;
- a path to a ``.safetensors`` file, a zoo checkpoint or a ``torch.save``'d state dict (``weights_only=True``:
  nothing pickled runs);
- for a torchvision twin (a model registered with ``twin=``, or ``torchvision/<name>``): a torchvision weights enum
  member (``GoogLeNet_Weights.IMAGENET1K_V1``) or its name (``"GoogLeNet_Weights.IMAGENET1K_V1"``,
  ``"IMAGENET1K_V1"``, ``"DEFAULT"``), read from torch's hub cache (``$TORCH_HOME/hub/checkpoints``, where
  torchvision keeps its downloads). Nothing downloads unless ``download=True``.

Weights carry their preprocessing: a model gets a timm-style ``pretrained_cfg`` (input size, resize, centre crop,
interpolation, mean/std, class names) that ``timm.data.resolve_data_config``, ``zoo.evaluate`` and ``zoo.predict``
read. Files are read as hostile: a non-regular file, a zip archive inflating far beyond its size, a pickle with
code, anything that is not a dict of tensors is a one-line ``CheckpointError`` naming the file.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import re
import stat
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch

from zoo.files import atomic_write
from zoo.foreign import is_timm_tag, is_training_checkpoint, strip_owner_prefix, timm_weights
from zoo.inputs import InputRecord
from zoo.specs import ModelSpec, Reported
from zoo.transfer import classifier_name

if TYPE_CHECKING:
    from zoo.transfer import TransferReport

__all__ = [
    "CheckpointError",
    "CHECKPOINT_FORMAT",
    "clean_state_dict",
    "state_dict_problem",
    "read_checkpoint",
    "read_safetensors",
    "read_state_dict",
    "resolve_weights",
    "fit_weights",
    "load_weights",
    "torchvision_weights",
    "hub_file",
    "check_hub_hash",
    "twin_reported",
    "default_cfg",
    "weights_cfg",
    "set_pretrained_cfg",
]

CHECKPOINT_FORMAT = "zoo.checkpoint"  # the "format" entry of a checkpoint written by zoo


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model."""


# ---------------------------------------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------------------------------------

_PREFIXES = ("_orig_mod.", "module.")


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``_orig_mod.``/``module.`` prefixes torch.compile and DDP add, wherever they nest."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if key.startswith(p):
                    key, changed = key[len(p) :], True
            key = key.replace("._orig_mod.", ".").replace(".module.", ".") if "_orig_mod" in key else key
        out[key] = value
    return out


def check_file(path: Path, what: str = "checkpoint") -> None:
    """A regular file: a FIFO would block, ``/dev/zero`` never ends, a folder is not a checkpoint."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} '{path}' does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {what} '{path}': {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, pipe or socket"
        raise CheckpointError(f"{what} '{path}' is not a regular file (it is {kind})")


# A torch.save archive stores its entries uncompressed; zip's deflate could inflate a small file ~1000-fold.
_MAX_INFLATION, _INFLATION_SLACK = 4, 16 << 20


def _check_archive(path: Path) -> None:
    """Refuse a zip archive whose entries inflate far beyond the file (torch.load would inflate them)."""
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return  # not a readable archive: torch.load says what is wrong
    size = path.stat().st_size
    if inflated > _MAX_INFLATION * size + _INFLATION_SLACK:
        raise CheckpointError(
            f"'{path}' is refused: its entries inflate to {inflated:,} bytes from a {size:,}-byte file (a "
            "decompression bomb?); zoo reads torch.save archives, which are stored uncompressed"
        )


def first_line(exc: BaseException) -> str:
    """``"TypeName: first line of the message"``, at most 160 characters of it."""
    text = " ".join(str(exc).strip().splitlines()[:1]).strip()
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The dict in a ``torch.save`` file, read with ``weights_only=True``; ``CheckpointError`` otherwise."""
    path = Path(path)
    check_file(path)
    _check_archive(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        text = str(exc).strip()
        if "Weights only load failed" in text:  # torch's message goes on to suggest weights_only=False: never
            refused = re.search(r"GLOBAL ([\w.]+)", text)
            if refused:
                raise CheckpointError(
                    f"'{path}' is refused: it holds a pickled {refused.group(1)}, and zoo unpickles nothing but "
                    "tensors, numbers, strings, lists and dicts (pickled code never runs)"
                ) from None
            detail = re.search(r"Unsupported [^\n.]+", text)
            text = detail.group(0) if detail else "not a pickle of tensors"
        reason = f"{type(exc).__name__}: {text.splitlines()[0][:160]}" if text else type(exc).__name__
        raise CheckpointError(
            f"cannot read checkpoint '{path}': it is truncated, corrupt or not a torch.save file "
            f"({reason}); delete it or use another (e.g. best.pt)"
        ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"'{path}' holds a {type(ckpt).__name__}, not a zoo checkpoint or a state dict")
    return ckpt


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def state_dict_problem(state: Any) -> str | None:
    """What makes ``state`` not a state dict (string keys, tensor values), in a few words; ``None`` if it is one."""
    if not isinstance(state, dict):
        return f"it is not a dict of tensors ({type(state).__name__})"
    for key, value in state.items():
        if not isinstance(key, str):
            return f"key {_short(key)} is not a string"
        if not isinstance(value, torch.Tensor):
            hint = (
                f" (a training checkpoint? pass its state dict, e.g. torch.load(...)[{key!r}])"
                if isinstance(value, dict)
                else ""
            )
            return f"{key!r} is not a tensor ({type(value).__name__}){hint}"
    return None


def state_from_checkpoint(ckpt: dict[str, Any], path: Any) -> dict[str, torch.Tensor]:
    """The state dict of a zoo checkpoint, of a ``{"model": state}`` dict, or a bare state dict; checked."""
    if ckpt.get("format") == CHECKPOINT_FORMAT and "model" not in ckpt:
        raise CheckpointError(f"'{path}' is a zoo checkpoint without its 'model' weights")
    if ckpt.get("format") != CHECKPOINT_FORMAT and is_training_checkpoint(ckpt):
        ckpt = {"model": ckpt["state_dict"]}  # Lightning's .ckpt: the module's prefix goes in fit_weights / load
    state = ckpt["model"] if ckpt.get("format") == CHECKPOINT_FORMAT or isinstance(ckpt.get("model"), dict) else ckpt
    problem = state_dict_problem(state)
    if problem:
        raise CheckpointError(f"'{path}' is not a state dict: {problem}")
    return state


def read_safetensors(path: Path, map_location: Any = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the metadata of a ``.safetensors`` file; ``CheckpointError`` naming a bad file."""
    check_file(path, "safetensors file")
    try:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path), device=str(map_location))
    except Exception as exc:
        raise CheckpointError(
            f"cannot read safetensors file '{path}': it is truncated, corrupt or not a safetensors file "
            f"({first_line(exc)})"
        ) from None
    problem = state_dict_problem(state)
    if problem:
        raise CheckpointError(f"'{path}' is not a state dict: {problem}")
    return state, meta


def read_state_dict(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, torch.Tensor]:
    """The state dict in ``path``: a ``.safetensors`` file, a zoo checkpoint, or a ``torch.save``'d state dict
    (read with ``weights_only=True``: nothing pickled runs). Anything else is a one-line ``CheckpointError``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path, map_location)[0]
    return state_from_checkpoint(read_checkpoint(path, map_location), path)


# ---------------------------------------------------------------------------------------------------------
# torchvision's weights: the enum, the hub cache, the published metrics
# ---------------------------------------------------------------------------------------------------------

# "GoogLeNet_Weights.IMAGENET1K_V1", "IMAGENET1K_V1", "DEFAULT": an enum member's name, never a file's
_ENUM_NAME = re.compile(r"^(?:[A-Za-z]\w*Weights\.)?[A-Z][A-Z0-9_]*$")
# What torchvision's own builders set when they are given weights (googlenet.py, inception.py), for the
# torchvision/<name> source; zoo's families declare theirs as twin_kwargs.
_TORCHVISION_IMPLIED = {"googlenet": {"transform_input": True}, "inception_v3": {"transform_input": True}}


def twin_of(spec: ModelSpec) -> str | None:
    """The torchvision builder ``spec`` equals: its declared ``twin``, or ``<name>`` for ``torchvision/<name>``."""
    if spec.twin:
        return spec.twin
    return spec.name.split("/", 1)[1] if spec.source == "torchvision" else None


def torchvision_weights(weights: Any, spec: ModelSpec) -> Any:
    """The torchvision weights enum member ``weights`` means for ``spec``, or ``None`` when it means a state dict
    or a file. ``ValueError`` for weights of another model, or when ``spec`` has no torchvision twin."""
    is_member = isinstance(weights, enum.Enum)
    if not is_member and not (isinstance(weights, str) and _ENUM_NAME.match(weights) and not os.path.exists(weights)):
        return None
    import torchvision.models as tvm

    twin = twin_of(spec)
    if is_member and not isinstance(weights, tvm.WeightsEnum):
        raise TypeError(f"weights must be a state dict, a path or torchvision weights, got {weights!r}")
    if twin is None:
        raise ValueError(
            f"'{spec.name}' has no torchvision twin, so torchvision weights ({weights}) cannot load into it; "
            "pass a state dict or a path (a twin's card, zoo.info(name), has a 'torchvision' row)"
        )
    own = tvm.get_model_weights(twin)
    choices = ", ".join(["DEFAULT", *(m.name for m in own)])
    if is_member:
        member = weights
    elif "." in weights:
        try:
            member = tvm.get_weight(weights)
        except (ValueError, KeyError, AttributeError):
            raise ValueError(
                f"torchvision has no weights '{weights}'; {spec.name} takes {own.__name__}.{{{choices}}}"
            ) from None
    else:
        try:
            member = own[weights]
        except KeyError:
            raise ValueError(f"{own.__name__} has no member '{weights}'; accepted: {choices}") from None
    if type(member) is not own:
        raise ValueError(f"weights {member} are not {spec.name}'s; it takes {own.__name__}.{{{choices}}}")
    return member


_VERIFIED: dict[tuple[str, int, int], bool] = {}  # (path, size, mtime_ns) -> the file matched its name's hash


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.sha256ok")


def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def check_hub_hash(path: Path) -> None:
    """Refuse a hub-cache file whose sha256 does not start with the hash prefix in its name (torchvision's
    ``resnet18-f37072fd.pth``): the file is hashed when first used, and the verdict kept, keyed by the file's path,
    size and mtime, in this process and in a small sidecar next to it (``.<name>.sha256ok``), so that it is
    hashed again only when it changes. A name without a prefix is not checked."""
    digest = torch.hub.HASH_REGEX.search(path.name)
    if digest is None:
        return
    check_file(path, "weights file")  # a FIFO would block the hash
    stamp = _stamp(path)
    sidecar = _sidecar(path)
    if _VERIFIED.get(stamp):
        return
    try:
        if sidecar.read_text().split() == [str(stamp[1]), str(stamp[2]), digest.group(1)]:
            _VERIFIED[stamp] = True
            return
    except (OSError, UnicodeDecodeError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if not h.hexdigest().startswith(digest.group(1)):
        raise CheckpointError(
            f"'{path}' is refused: its sha256 starts {h.hexdigest()[: len(digest.group(1))]}, not "
            f"{digest.group(1)} as its name says (a truncated, tampered or different file); delete it and download "
            "it again (download=True)"
        )
    _VERIFIED[stamp] = True
    with contextlib.suppress(OSError):  # a read-only cache: the verdict is kept in this process only
        atomic_write(sidecar, f"{stamp[1]} {stamp[2]} {digest.group(1)}\n")


def hub_file(member: Any) -> Path:
    """Where torch's hub cache keeps ``member``'s file: ``$TORCH_HOME/hub/checkpoints/<file name of its url>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(member.url).path)


def _read_torchvision(member: Any, spec: ModelSpec, download: bool) -> dict[str, torch.Tensor]:
    path = hub_file(member)
    if not path.exists():
        if not download:
            twin = twin_of(spec)
            raise FileNotFoundError(
                f"{member} is not in torch's hub cache (zoo looked for '{path}'); zoo downloads nothing unless asked: "
                f"zoo.create('{spec.name}', weights='{member}', download=True), or torchvision.models.{twin}"
                f"(weights='{member.name}') once, or put {member.url} there"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = torch.hub.HASH_REGEX.search(path.name)  # torchvision's file names end in the sha256 prefix
        torch.hub.download_url_to_file(member.url, str(path), hash_prefix=digest.group(1) if digest else None)
    check_hub_hash(path)
    return read_state_dict(path)


def twin_reported(twin: str) -> tuple[Reported, ...]:
    """acc@1 and acc@5 of torchvision's default weights for ``twin``, from torchvision's metadata (never typed in);
    ``()`` when torchvision has no such model or no ImageNet metrics."""
    try:
        import torchvision.models as tvm

        default = tvm.get_model_weights(twin).DEFAULT
    except Exception:
        return ()
    metrics = default.meta.get("_metrics", {}).get("ImageNet-1K", {})
    return tuple(
        Reported("ImageNet-1k", metric, float(metrics[key]), f"torchvision {default}")
        for key, metric in (("acc@1", "top-1"), ("acc@5", "top-5"))
        if key in metrics
    )


# ---------------------------------------------------------------------------------------------------------
# pretrained_cfg: the preprocessing the weights expect (timm's keys, read by timm.data.resolve_data_config)
# ---------------------------------------------------------------------------------------------------------


def weights_cfg(member: Any, twin: str) -> dict[str, Any]:
    """The ``pretrained_cfg`` of torchvision weights: their own transforms' resize, crop, interpolation, mean/std
    (``InputRecord.from_torchvision``), and which weights they are."""
    identity = {"architecture": twin, "tag": member.name, "source": "torchvision", "weights": str(member)}
    return {**identity, "url": member.url, **InputRecord.from_torchvision(member).to_timm_cfg()}


def default_cfg(spec: ModelSpec, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ``pretrained_cfg`` of a model built without known weights: the input it was created for (``img_size``,
    ``in_chans``, else the card's), resized whole (``crop_pct`` 1), bilinear as zoo's image folders are, and
    normalised with 0.5, zoo's loaders' default when the data declares no statistics."""
    c, h, w = spec.input_size or (3, None, None)
    c = kwargs.get("in_chans", c)
    size = kwargs.get("img_size")
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else tuple(size)
    record = InputRecord(
        input_size=(c, h, w) if h is not None and w is not None else None,
        interpolation="bilinear",
        mean=(0.5,) * c,
        std=(0.5,) * c,
        num_classes=kwargs.get("num_classes", spec.num_classes),
    )
    return {"architecture": spec.name, "tag": None, "source": spec.source, "weights": None, **record.to_timm_cfg()}


def set_pretrained_cfg(model: torch.nn.Module, cfg: dict[str, Any], keep: bool = False) -> None:
    """``model.pretrained_cfg = cfg``; the input record of published weights (``cfg["weights"]``) is written on
    the model too (``zoo_config["inputs"]`` and ``["weights"]``), so that checkpoints carry it. ``keep``: leave a
    ``pretrained_cfg`` the builder set (timm's models have theirs)."""
    if keep and isinstance(getattr(model, "pretrained_cfg", None), dict):
        return
    model.pretrained_cfg = dict(cfg)
    if "classifier" not in model.pretrained_cfg and (head := classifier_name(model)):
        model.pretrained_cfg["classifier"] = head  # timm's key: what create_optimizer_v2 and fine-tuning read
    zoo_config = getattr(model, "zoo_config", None)
    if isinstance(zoo_config, dict) and cfg.get("weights") and cfg.get("input_size"):
        zoo_config["inputs"] = InputRecord.from_timm_cfg(cfg).to_dict()
        zoo_config["weights"] = str(cfg["weights"])


# ---------------------------------------------------------------------------------------------------------
# weights= of zoo.create
# ---------------------------------------------------------------------------------------------------------


def resolve_weights(
    weights: Any, spec: ModelSpec, *, download: bool = False
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    """What ``weights`` means for ``spec``: ``(state dict, pretrained_cfg or None, builder keywords they imply)``.

    A path is read (``CheckpointError`` naming an unreadable file), a dict checked (``ValueError``), torchvision
    weights read from the hub cache (``FileNotFoundError`` saying where zoo looked, unless ``download``); the
    latter imply their twin's keywords (GoogLeNet's ``transform_input=True``) and their input size.
    """
    if spec.source == "timm" and is_timm_tag(weights):
        return timm_weights(spec.name.split("/", 1)[1], weights, download)  # a tag of timm's, offline first
    member = torchvision_weights(weights, spec)
    if member is not None:
        twin = twin_of(spec)
        cfg = weights_cfg(member, twin)
        implied = dict(spec.twin_kwargs) if spec.twin else dict(_TORCHVISION_IMPLIED.get(twin, {}))
        crop = cfg["input_size"][-1]
        if spec.input_size is not None and crop != spec.input_size[-1]:
            implied["img_size"] = crop  # ViT's SWAG weights are 384 px: their position embeddings are
        return _read_torchvision(member, spec, download), cfg, implied
    if download:
        raise ValueError(f"{spec.name}: download=True fetches torchvision weights only, not {_short(weights)}")
    return _weights_state(weights, spec), None, {}


def _weights_state(weights: Any, spec: ModelSpec | None = None) -> dict[str, Any]:
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
    twin = spec is not None and twin_of(spec)
    accepted = "a state dict, a path or torchvision weights" if twin else "a state dict or a path"
    raise TypeError(f"weights must be {accepted}, got {type(weights).__name__}")


def fit_weights(
    model: torch.nn.Module, state: dict[str, Any], spec: ModelSpec | None, *, adapt: set[str] | None = None
) -> TransferReport:
    """Load ``state`` into ``model``, through the family's ``convert_weights`` when the keys differ, and adapted to
    the keywords the model was created with (``zoo.transfer``: a new head for another ``num_classes``, the stem for
    another ``in_chans``, ViT position embeddings for another ``img_size``). What was adapted is recorded in
    ``model.zoo_config["transfer"]`` and said in a ``TransferWarning``; anything else that does not fit is a
    one-line ``ValueError`` naming missing, unexpected or mis-shaped keys.

    Args:
        adapt: the keywords that may adapt the weights; ``None``: those in ``model.zoo_config["kwargs"]``.
    """
    from zoo.containment import call_plugin, describe  # the plugin's converter runs contained
    from zoo.transfer import TransferWarning, adapt_state_dict

    name = spec.name if spec else type(model).__name__
    own = set(model.state_dict())
    state = strip_owner_prefix(clean_state_dict(state), own)  # a LightningModule's attribute prefix
    if set(state) != own and spec is not None and spec.convert_weights is not None:
        try:
            state = call_plugin(f"plugin '{spec.plugin}'", spec.convert_weights, state)
        except Exception as exc:
            raise ValueError(
                f"weights for '{name}': convert_weights of plugin '{spec.plugin}' failed: {describe(exc)}"
            ) from None
        problem = state_dict_problem(state) if isinstance(state, dict) else f"it returned a {type(state).__name__}"
        if problem:
            raise ValueError(f"weights for '{name}': convert_weights of plugin '{spec.plugin}': {problem}")
    state, report = adapt_state_dict(model, state, source_name=f"'{name}'", adapt=adapt)
    missing, unexpected = sorted(own - set(state) - set(report.fresh)), sorted(set(state) - own)
    if missing or unexpected:
        raise ValueError(
            f"weights do not fit '{name}': {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
        )
    try:
        model.load_state_dict(state, strict=not report.fresh)  # the fresh keys keep the builder's initialisation
    except RuntimeError as exc:  # size mismatches: torch lists them one per line
        lines = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise ValueError(f"weights do not fit '{name}': {(lines or [describe(exc)])[0]}{more}") from None
    if report:
        zoo_config = getattr(model, "zoo_config", None)
        if isinstance(zoo_config, dict):
            zoo_config["transfer"] = report.to_dict()
        warnings.warn(f"weights adapted to '{name}': {report}", TransferWarning, stacklevel=3)
    return report


def load_weights(
    model: torch.nn.Module, weights: Any, spec: ModelSpec | None = None, *, adapt: set[str] | None = None
) -> TransferReport:
    """Load a state dict (or a path to one) into ``model``, converting a reference format if needed and adapting
    the head, stem and position embeddings to the keywords in ``adapt`` (``fit_weights``)."""
    return fit_weights(model, _weights_state(weights, spec), spec, adapt=adapt)
