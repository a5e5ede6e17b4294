"""Pretrained weights by tag: the record that describes them, where zoo looks for their file, and the hash check.

A model name may carry a tag, timm's ``name.tag`` form: ``zoo.create("lenet5.digits")`` is
``zoo.create("lenet5", weights="digits")``. Each tag is a ``WeightsRecord``: the file (shipped in a package, or a
URL), its sha256 and size, the input record saying how inputs are prepared, the class names, the metrics the
weights reach and on which split, the dataset, the licence, who registered them and the command that made them.
Built-ins and plugins register records through the ``register_weights`` hook; a torchvision twin's tags
(``googlenet.tv_in1k``) are made from torchvision's weights enum and read through torch's hub cache.

Resolution is offline first: the file shipped in its package, else ``$ZOO_HOME/weights``, the user cache dir
(``$XDG_CACHE_HOME/zoo/weights`` or ``~/.cache/zoo/weights``) and torch's hub cache (``<hub dir>/checkpoints``).
Nothing downloads unless ``download=True``, and every file, found or fetched, is checked against its sha256.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from zoo.specs import ModelSpec
from zoo.suggest import suggest

__all__ = [
    "ENV_HOME",
    "TAG_RE",
    "WeightsRecord",
    "WeightsHashError",
    "UnknownWeightsError",
    "records_of",
    "find_record",
    "load_record",
    "attach_record",
    "make_record",
    "split_tag",
    "looks_like_tag",
    "cache_dirs",
    "sha256_of",
    "locate",
    "twin_records",
    "unknown_tag_message",
    "tv_tag",
    "timm_cfg",
]

ENV_HOME = "ZOO_HOME"
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")  # lower case, no dots: "fashion_mnist", "tv_in1k"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
INPUT_KEYS = (
    "input_size", "input_dtype", "mean", "std", "interpolation", "resize_size", "crop_size", "classes",
    "num_classes", "task", "loss", "dataset", "hflip",
)  # fmt: skip


class WeightsHashError(ValueError):
    """A weights file does not match the sha256 of its record (tampered with, truncated, or another file)."""


@dataclass(frozen=True)
class WeightsRecord:
    """One set of weights of one model, registered under a tag.

    Attributes:
        model: the registry name of the model the weights load into (``"lenet5"``).
        tag: the tag (``"digits"``); ``f"{model}.{tag}"`` names the weights.
        file: the file name inside ``package`` (shipped weights) or a URL (fetched with ``download=True``).
        sha256: the file's sha256 (hex); ``None`` only for torchvision's, whose file names carry the hash prefix
            that torch's hub checks.
        size: the file's size in bytes.
        inputs: the input record, a plain dict (``input_size``, ``input_dtype``, ``mean``, ``std``,
            ``interpolation``, ``resize_size``, ``crop_size``, ``classes``, ``num_classes``, ``task``, ``loss``,
            ``dataset``, ``hflip``): how inputs are prepared for these weights.
        classes: the class names, index order.
        metrics: what the weights reach, e.g. ``{"top1": 98.6, "split": "test"}`` (accuracy in %).
        dataset: the data they were trained on.
        licence: the weights' licence (and the data's).
        source: who registered them: the plugin's name (set by zoo, not by the plugin).
        recipe: the command or recipe that produced them.
        kwargs: the builder keywords the weights need (``{"img_size": 28}``), set unless the user gives them.
        package: the Python package shipping ``file`` (``"zoo.weights_data"``), or ``None``.
        torchvision: the torchvision weights enum member these are (``"GoogLeNet_Weights.IMAGENET1K_V1"``).
    """

    model: str
    tag: str
    file: str
    sha256: str | None
    size: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict, hash=False, repr=False)
    classes: tuple[str, ...] | None = field(default=None, repr=False)
    metrics: dict[str, Any] = field(default_factory=dict, hash=False)
    dataset: str | None = None
    licence: str | None = None
    source: str = "?"
    recipe: Any = field(default=None, hash=False)
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False)
    package: str | None = None
    torchvision: str | None = None

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"

    @property
    def url(self) -> str | None:
        return self.file if "://" in self.file else None

    @property
    def file_name(self) -> str:
        """The base name the caches keep the file under."""
        return os.path.basename(urlparse(self.file).path) if self.url else os.path.basename(self.file)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes) if self.classes else None
        d["name"] = self.name
        return d

    def summary(self) -> str:
        """One line for cards and tables: dataset, metrics, preprocessing, size, source, licence."""
        parts = [self.dataset or "?"]
        if self.metrics:
            shown = ", ".join(f"{k} {v}" for k, v in self.metrics.items() if k not in ("split", "num_samples"))
            parts.append(f"{shown} ({self.metrics.get('split', '?')})" if shown else "")
        parts += [preprocessing(self.inputs), format_size(self.size), f"from {self.source}"]
        if self.licence:
            parts.append(self.licence)
        return "; ".join(p for p in parts if p)


def format_size(size: int | None) -> str:
    if size is None:
        return "size ?"
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} KB"


def preprocessing(inputs: dict[str, Any]) -> str:
    """``"1x32x32 uint8, mean 0.306 std 0.324"``: the input record in a few words."""
    text = "x".join(map(str, inputs.get("input_size") or ())) or "?"
    if inputs.get("input_dtype"):
        text += f" {inputs['input_dtype']}"
    if inputs.get("resize_size"):
        text += f", resize {inputs['resize_size']} {inputs.get('interpolation') or ''}".rstrip()
    if inputs.get("mean"):
        text += ", mean " + ",".join(f"{v:.3g}" for v in inputs["mean"])
        text += " std " + ",".join(f"{v:.3g}" for v in inputs["std"] or ())
    return text


# ---------------------------------------------------------------------------------------------------------
# Making a record from a registration
# ---------------------------------------------------------------------------------------------------------

_FIELDS = (
    "file", "sha256", "size", "inputs", "classes", "metrics", "dataset", "licence", "recipe", "kwargs", "package",
)  # fmt: skip
_REQUIRED = ("file", "sha256", "inputs")


def make_record(source: str, model: Any, tag: Any, fields: dict[str, Any]) -> WeightsRecord:
    """The ``WeightsRecord`` of one ``register(model, tag, **fields)`` call; ``ValueError`` saying what is wrong."""
    if not isinstance(model, str) or not model:
        raise ValueError(f"weights: model must be a registered model's name, got {model!r}")
    if not isinstance(tag, str) or not TAG_RE.match(tag):
        raise ValueError(f"weights for '{model}': invalid tag {tag!r}; use lower-case letters, digits, '_' and '-'")
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise ValueError(f"weights {model}.{tag}: unknown field {unknown[0]!r}; accepted: {', '.join(_FIELDS)}")
    missing = [k for k in _REQUIRED if fields.get(k) is None]
    if missing:
        raise ValueError(f"weights {model}.{tag}: missing {', '.join(missing)} (required: {', '.join(_REQUIRED)})")
    if not isinstance(fields["file"], str) or not fields["file"]:
        raise ValueError(f"weights {model}.{tag}: file must be a file name or a URL, got {fields['file']!r}")
    if not isinstance(fields["sha256"], str) or not _SHA256_RE.match(fields["sha256"].lower()):
        raise ValueError(f"weights {model}.{tag}: sha256 must be 64 hex digits, got {fields['sha256']!r}")
    if "://" not in fields["file"] and not fields.get("package"):
        raise ValueError(f"weights {model}.{tag}: a file name needs package= (the package shipping it), or give a URL")
    inputs = fields["inputs"]
    if not isinstance(inputs, dict) or not inputs.get("input_size"):
        raise ValueError(f"weights {model}.{tag}: inputs must be an input record dict with input_size")
    for key in ("metrics", "kwargs"):
        if fields.get(key) is not None and not isinstance(fields[key], dict):
            raise ValueError(f"weights {model}.{tag}: {key} must be a dict, got {type(fields[key]).__name__}")
    classes = fields.get("classes") or inputs.get("classes")
    return WeightsRecord(
        model=model,
        tag=tag,
        file=fields["file"],
        sha256=fields["sha256"].lower(),
        size=int(fields["size"]) if fields.get("size") is not None else None,
        inputs={k: inputs.get(k) for k in INPUT_KEYS},
        classes=tuple(str(c) for c in classes) if classes else None,
        metrics=dict(fields.get("metrics") or {}),
        dataset=fields.get("dataset") or inputs.get("dataset"),
        licence=fields.get("licence"),
        source=source,
        recipe=fields.get("recipe"),
        kwargs=dict(fields.get("kwargs") or {}),
        package=fields.get("package"),
    )


# ---------------------------------------------------------------------------------------------------------
# Names with tags
# ---------------------------------------------------------------------------------------------------------


def split_tag(name: str, is_model: Any) -> tuple[str, str | None]:
    """``("lenet5", "digits")`` for ``"lenet5.digits"`` when ``lenet5`` is a model (``is_model(base)``) and
    ``name`` itself is not; ``(name, None)`` otherwise. Source names (``timm/...``) keep their own tags."""
    if "/" in name or "." not in name or is_model(name):
        return name, None
    for base, tag in (name.rsplit(".", 1), name.split(".", 1)):
        if is_model(base):
            return base, tag
    return name, None


def looks_like_tag(weights: Any) -> bool:
    """A string that can only mean a tag: lower case, no dots or separators, and no such file here."""
    return isinstance(weights, str) and bool(TAG_RE.match(weights)) and not os.path.exists(weights)


def unknown_tag_message(model: str, tag: str, tags: list[str]) -> str:
    if not tags:
        return (
            f"'{model}' has no weights tagged '{tag}' (it has no registered weights; zoo.list_models(pretrained=True) "
            "lists the models that have)"
        )
    return f"'{model}' has no weights tagged '{tag}'; its tags: {', '.join(tags)}{suggest(tag, tags)}"


# ---------------------------------------------------------------------------------------------------------
# Where files are: the package, the caches; the hash check; the download
# ---------------------------------------------------------------------------------------------------------


def cache_dirs() -> list[Path]:
    """The caches searched, in order: ``$ZOO_HOME/weights``, the user cache dir, torch's hub ``checkpoints``."""
    import torch

    dirs = [Path(os.environ[ENV_HOME]).expanduser() / "weights"] if os.environ.get(ENV_HOME) else []
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    dirs.append(Path(base) / "zoo" / "weights")
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return dirs


def shipped_path(record: WeightsRecord) -> Path | None:
    """Where the package that ships ``record``'s file has it, or ``None`` (no package, or not importable)."""
    if not record.package or record.url:
        return None
    from importlib import resources

    try:
        return Path(str(resources.files(record.package) / record.file))
    except (ModuleNotFoundError, TypeError, ValueError):
        return None


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_hash(record: WeightsRecord, path: Path, fix: str) -> None:
    """``WeightsHashError`` in one line unless ``path`` has the record's sha256."""
    actual = sha256_of(path)
    if actual != record.sha256:
        raise WeightsHashError(
            f"'{path}' is refused: its sha256 is {actual}, but weights {record.name} expect {record.sha256} "
            f"(a tampered, truncated or different file); {fix}"
        )


def locate(record: WeightsRecord, download: bool = False) -> Path:
    """The checked file of ``record``: shipped, else cached, else (``download=True``) fetched into the cache.

    Raises:
        FileNotFoundError: no copy anywhere and no download asked for (or possible); it names every place.
        WeightsHashError: the file found or fetched does not match the record's sha256.
    """
    shipped = shipped_path(record)
    places = ([shipped] if shipped is not None else []) + [d / record.file_name for d in cache_dirs()]
    for path in places:
        if path.is_file():
            fix = "reinstall the package that ships it" if path == shipped else "delete it, then download=True"
            check_hash(record, path, fix)
            return path
    looked = ", ".join(f"'{p}'" for p in places)
    if not record.url:
        raise FileNotFoundError(
            f"weights {record.name} are not installed: zoo looked in {looked}; reinstall {record.package or 'the '}"
            f"package that ships them (plugin '{record.source}')"
        )
    if not download:
        raise FileNotFoundError(
            f"weights {record.name} are not in any cache (zoo looked in {looked}); zoo downloads nothing unless "
            f"asked: zoo.create('{record.name}', download=True) fetches {record.url}"
        )
    return fetch(record, cache_dirs()[0] / record.file_name)


def fetch(record: WeightsRecord, dest: Path) -> Path:
    """Download ``record.url`` to ``dest`` (torch.hub writes a temporary file and renames it) and check it."""
    import torch

    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(record.url, str(dest), progress=False)
    try:
        check_hash(record, dest, f"the download from {record.url} was removed")
    except WeightsHashError:
        dest.unlink(missing_ok=True)
        raise
    return dest


# ---------------------------------------------------------------------------------------------------------
# torchvision's weights as tags of the twins
# ---------------------------------------------------------------------------------------------------------


def tv_tag(member_name: str) -> str:
    """timm's tag for a torchvision weights name: ``IMAGENET1K_V1`` -> ``tv_in1k``, ``IMAGENET1K_V2`` ->
    ``tv2_in1k``, ``IMAGENET1K_SWAG_E2E_V1`` -> ``swag_e2e_in1k``, ``..._SWAG_LINEAR_V1`` -> ``swag_lin_in1k``."""
    m = re.fullmatch(r"IMAGENET1K_V(\d+)", member_name)
    if m:
        return "tv_in1k" if m.group(1) == "1" else f"tv{m.group(1)}_in1k"
    m = re.fullmatch(r"IMAGENET1K_SWAG_(E2E|LINEAR)_V1", member_name)
    if m:
        return f"swag_{'e2e' if m.group(1) == 'E2E' else 'lin'}_in1k"
    return member_name.lower()


@functools.cache
def _twin_records(model: str, twin: str) -> tuple[WeightsRecord, ...]:
    try:
        import torchvision.models as tvm

        members = list(tvm.get_model_weights(twin))
    except Exception:  # no such torchvision model, or torchvision without it: no tags
        return ()
    from zoo.weights import weights_cfg

    records = []
    for member in members:
        cfg = weights_cfg(member, twin)
        meta = member.meta
        scores = next(iter(meta.get("_metrics", {}).values()), {})
        metrics = {k.replace("acc@", "top"): float(v) for k, v in scores.items() if k.startswith("acc@")}
        records.append(
            WeightsRecord(
                model=model,
                tag=tv_tag(member.name),
                file=member.url,
                sha256=None,
                size=int(meta["_file_size"] * 1024 * 1024) if meta.get("_file_size") else None,
                inputs={**_inputs_of_cfg(cfg), "dataset": "ImageNet-1k"},
                classes=cfg["label_names"],
                metrics={**metrics, "split": "ImageNet-1k val"} if metrics else {},
                dataset="ImageNet-1k",
                licence="BSD-3-Clause (torchvision)",
                source="torchvision",
                recipe=meta.get("recipe"),
                torchvision=str(member),
            )
        )
    return tuple(records)


def _inputs_of_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    """The input record of published weights' ``pretrained_cfg`` (torchvision's transforms): ImageNet classes."""
    from zoo.inputs import InputRecord

    return {**InputRecord.from_timm_cfg(cfg).to_dict(), "task": "classification", "loss": "cross_entropy"}


def twin_records(spec: ModelSpec) -> tuple[WeightsRecord, ...]:
    """The tags of a torchvision twin: one per member of its torchvision weights enum (``()`` for other models)."""
    return _twin_records(spec.name, spec.twin) if spec.twin else ()


# ---------------------------------------------------------------------------------------------------------
# The input record and timm's pretrained_cfg
# ---------------------------------------------------------------------------------------------------------


def timm_cfg(record: WeightsRecord) -> dict[str, Any]:
    """The ``pretrained_cfg`` (timm's keys) of ``record``: its input record's, with the keys that name the weights
    (``architecture``, ``tag``, ``source``, ``weights``, ``url``)."""
    from zoo.inputs import InputRecord

    cfg = InputRecord.from_dict(record.inputs).to_timm_cfg()
    if record.classes:
        cfg["label_names"] = tuple(record.classes)
    identity = {"architecture": record.model, "tag": record.tag, "source": record.source, "weights": record.name}
    return {**identity, "url": record.url, **cfg}


# ---------------------------------------------------------------------------------------------------------
# Looking tags up and loading them (zoo.create, zoo.info, zoo.list_models call these)
# ---------------------------------------------------------------------------------------------------------


class UnknownWeightsError(ValueError):
    """A model has no weights under that tag; the message lists its tags and the nearest one."""


def records_of(table: dict[str, WeightsRecord], spec: ModelSpec) -> list[WeightsRecord]:
    """The weights of ``spec``: those registered through the hook (by tag), then a torchvision twin's."""
    own = sorted((r for r in table.values() if r.model == spec.name), key=lambda r: r.tag)
    return own + list(twin_records(spec))


def find_record(records: list[WeightsRecord], spec: ModelSpec, weights: Any) -> WeightsRecord | None:
    """The record ``weights`` names when it is a tag; ``None`` when it means something else (a path, a state dict,
    torchvision's ``"DEFAULT"``); ``UnknownWeightsError`` for a tag-like string the model does not have."""
    if "/" in spec.name or not looks_like_tag(weights):
        return None
    for record in records:
        if record.tag == weights:
            return record
    raise UnknownWeightsError(unknown_tag_message(spec.name, weights, [r.tag for r in records]))


def load_record(record: WeightsRecord, spec: ModelSpec, download: bool) -> tuple[dict, dict, dict]:
    """``(state dict, pretrained_cfg, builder keywords)`` of ``record``: torchvision's through torch's hub cache,
    zoo's and plugins' from the checked file ``locate`` finds."""
    from zoo.weights import read_state_dict, resolve_weights

    if record.torchvision:
        return resolve_weights(record.torchvision, spec, download=download)
    return read_state_dict(locate(record, download)), timm_cfg(record), dict(record.kwargs)


def attach_record(model: Any, record: WeightsRecord) -> None:
    """Put the weights' input record on ``model`` (``zoo_config["inputs"]``) when the model takes the weights as
    they are; an adapted model (a new head, other channels or size: ``zoo_config["transfer"]``) keeps the record
    made from its adapted ``pretrained_cfg``, with the data's facts the cfg cannot hold."""
    config = getattr(model, "zoo_config", None)
    if not isinstance(config, dict):
        return
    config["weights"] = record.name
    if not config.get("transfer"):
        config["inputs"] = dict(record.inputs)
        return
    adapted = dict(config.get("inputs") or {})
    for key in ("input_dtype", "task", "loss", "dataset", "hflip"):
        if adapted.get(key) is None:
            adapted[key] = record.inputs.get(key)
    config["inputs"] = adapted
