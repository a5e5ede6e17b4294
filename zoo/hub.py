"""The Hugging Face layout: ``zoo.save_pretrained(model, folder)``, ``zoo.load(folder)`` and
``zoo.create("hf-hub:user/repo")``.

A folder in this layout holds three files, as a Hugging Face model repository does:

- ``model.safetensors``: the weights (with zoo's config in its metadata too, so the file alone also loads);
- ``config.json``: how to rebuild the model: ``architecture`` (the registry name), ``kwargs``, the input record
  under ``inputs`` (size, dtype, mean/std, classes, task) and the rest of ``model.zoo_config``;
- ``README.md``: the model card, YAML front matter (``library_name: zoo``, tags, license, datasets, metrics)
  then the architecture, the data, the metrics, the training recipe, the intended use and how to load it.

``zoo.load(folder)`` reads it back with every check ``zoo.load`` makes of a checkpoint (a folder with a
``config.json`` holding only ``architecture`` and ``model_args``, as timm writes, loads too).
``zoo.create("hf-hub:user/repo[@revision]")`` reads a repository through ``huggingface_hub`` (the optional extra
``pip install "zoo[hub]"``), from its cache: nothing downloads unless ``download=True``. Uploading stays the user's
own ``huggingface_hub`` call (``HfApi().upload_folder(folder_path=..., repo_id=...)``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "HUB_PREFIX",
    "WEIGHTS_NAME",
    "CONFIG_NAME",
    "README_NAME",
    "save_pretrained",
    "pretrained_config",
    "model_card",
    "is_pretrained_source",
    "read_pretrained",
    "hub_folder",
    "create_from_hub",
]

HUB_PREFIX = "hf-hub:"
WEIGHTS_NAME, CONFIG_NAME, README_NAME = "model.safetensors", "config.json", "README.md"
MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few kB; a larger one is not read
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
# TrainConfig fields that say where and how visibly a run went, not how the model was trained
_NOT_RECIPE = ("callbacks", "progress", "resume", "checkpoint_dir", "checkpoint_every", "num_workers", "pin_memory",
               "overwrite", "resume_new_data")  # fmt: skip
_LAYOUT_KEYS = ("architecture", "library_name", "zoo_version", "num_classes", "model_args")


# ---------------------------------------------------------------------------------------------------------
# Writing: config.json, README.md, the folder
# ---------------------------------------------------------------------------------------------------------


def _inputs_of(zoo_config: dict[str, Any]) -> dict[str, Any] | None:
    """The input record of a ``zoo_config`` in any layout zoo has written (``zoo.inputs.read_zoo_config``)."""
    from zoo.inputs import read_zoo_config

    inputs = read_zoo_config(zoo_config).get("inputs")
    return inputs if isinstance(inputs, dict) else None


def pretrained_config(model: Any) -> dict[str, Any]:
    """The ``config.json`` of ``model``: its ``zoo_config`` (``name``, ``kwargs``, records) as plain JSON, with
    ``architecture`` (timm's key for the name), the input record under ``inputs`` and ``num_classes``."""
    from zoo.modelfile import model_config, unwrap
    from zoo.version import __version__

    zoo_config = model_config(unwrap(model))
    if not zoo_config or not isinstance(zoo_config.get("name"), str):
        raise ValueError(
            "save_pretrained needs a model made by zoo.create (or zoo.load): it records how to rebuild it "
            f"(model.zoo_config), and this {type(model).__name__} has no such record"
        )
    inputs = _inputs_of(zoo_config)
    num_classes = (inputs or {}).get("num_classes") or zoo_config.get("kwargs", {}).get("num_classes")
    num_classes = num_classes if num_classes is not None else getattr(unwrap(model), "num_classes", None)
    config = {"architecture": zoo_config["name"], "library_name": "zoo", "zoo_version": __version__}
    config.update(zoo_config)
    if inputs is not None:
        config["inputs"] = inputs
    if isinstance(num_classes, int):
        config["num_classes"] = num_classes
    return config


def _history_dict(history: Any) -> dict[str, Any]:
    if history is None:
        return {}
    return history.to_dict() if hasattr(history, "to_dict") else dict(history)


def _metrics(history: dict[str, Any]) -> list[tuple[str, str, float]]:
    """``(split, metric, value)`` rows: the test split's scores, else the last epoch's validation scores."""
    test = history.get("test") or {}
    if test:
        scores = {k: v for k, v in test.items() if k not in ("num_samples", "top1")}  # top1 is accuracy again
        split = f"test ({test['num_samples']} samples)" if test.get("num_samples") else "test"
    else:
        last = (history.get("epochs") or [{}])[-1]
        scores, split = {k[4:]: v for k, v in last.items() if k.startswith("val_")}, "validation"
    return [(split, k, float(v)) for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _yaml_list(key: str, values: list[str]) -> list[str]:
    # JSON strings are YAML scalars: quoting with json.dumps keeps any name valid YAML
    return [f"{key}:", *(f"- {json.dumps(str(v))}" for v in values)] if values else []


def _front_matter(config, card, inputs, metrics, license, datasets) -> str:
    family = getattr(card, "family", None)
    tags = ["zoo", "pytorch", "image-classification", *([family] if family else []), *getattr(card, "tags", ())]
    lines = ["---", "library_name: zoo", *_yaml_list("tags", list(dict.fromkeys(tags)))]
    if license:
        lines.append(f"license: {json.dumps(str(license))}")
    lines += _yaml_list("datasets", datasets)
    lines += _yaml_list("metrics", list(dict.fromkeys(m for _, m, _ in metrics)))
    if (inputs or {}).get("task") in (None, "classification"):
        lines.append("pipeline_tag: image-classification")
    return "\n".join([*lines, "---", ""])


def model_card(
    model: Any,
    config: dict[str, Any],
    *,
    history: Any = None,
    license: str | None = None,
    datasets: list[str] | None = None,
    repo_id: str | None = None,
) -> str:
    """The ``README.md`` of a saved model: YAML front matter, then architecture, data, metrics, training, intended
    use and how to load it. Sections with nothing to say are left out."""
    from zoo.registry import info

    name, kwargs, inputs = config["architecture"], config.get("kwargs") or {}, config.get("inputs") or {}
    try:
        card = info(name)
    except Exception:  # a plugin no longer installed: the card says what config.json says
        card = None
    hist = _history_dict(history or config.get("history"))
    metrics = _metrics(hist)
    datasets = list(datasets or ([inputs["dataset"]] if inputs.get("dataset") else []))
    args = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    out = [_front_matter(config, card, inputs, metrics, license, datasets), f"# {name}", ""]
    if card is not None and card.description:
        out += [card.description, ""]
    out += ["## Architecture", ""]
    if card is not None:
        paper = f"[{card.paper}]({card.url})" if card.paper and card.url else (card.paper or "not recorded")
        out += [f"- Family: {card.family or 'not recorded'}", f"- Paper: {paper}", f"- Year: {card.year or '?'}"]
    params = sum(p.numel() for p in model.parameters())
    out += [f"- Parameters: {params:,}", f'- Built with: `zoo.create("{name}"{args})`']
    transfer = config.get("transfer")
    if isinstance(transfer, dict):  # zoo.transfer's record: fine-tuned from other weights
        fresh = ", ".join(transfer.get("fresh") or []) or "none"
        out.append(f"- Started from pretrained weights; newly initialised: {fresh}")
    out.append("")
    if inputs:
        out += ["## Data", ""]
        for key, label in (("dataset", "Dataset"), ("input_size", "Input size"), ("input_dtype", "Input dtype")):
            if inputs.get(key) is not None:
                out.append(f"- {label}: {inputs[key]}")
        if inputs.get("mean") is not None:
            out.append(f"- Normalisation: mean {inputs['mean']}, std {inputs['std']}")
        if inputs.get("classes"):
            out.append(f"- Classes ({len(inputs['classes'])}): {', '.join(map(str, inputs['classes']))}")
        out.append("")
    if metrics:
        out += ["## Metrics", "", "| split | metric | value |", "|---|---|---|"]
        out += [f"| {split} | {metric} | {value:.4g} |" for split, metric, value in metrics] + [""]
    recipe = hist.get("config")
    if recipe:
        options = ", ".join(f"{k}={v!r}" for k, v in recipe.items() if v is not None and k not in _NOT_RECIPE)
        out += ["## Training", "", f"Trained with zoo's `fit`: `zoo.fit(model, data, {options})`.", ""]
    where = f"hf-hub:{repo_id}" if repo_id else "hf-hub:<user>/<repo>"
    out += [
        "## Intended use",
        "",
        "Teaching and experiments: a starting point for fine-tuning (`zoo.create(..., num_classes=N)` trains a new "
        "head) or for predictions on data prepared as the inputs above. Not evaluated for any other use.",
        "",
        "## How to load",
        "",
        "```python",
        "import zoo",
        "",
        f'model = zoo.create("{where}")  # pip install "zoo[hub]"; or zoo.load(folder) for a local copy',
        "```",
        "",
    ]
    return "\n".join(out)


def save_pretrained(
    model: Any,
    save_directory: str | os.PathLike,
    *,
    history: Any = None,
    license: str | None = None,
    datasets: list[str] | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write ``model`` in the Hugging Face layout: ``model.safetensors``, ``config.json`` and a ``README.md`` model
    card. ``zoo.load(save_directory)`` reads it back; upload it with your own ``huggingface_hub`` call.

    The files are written to a temporary folder beside ``save_directory`` and moved in, each by an atomic rename,
    so a crash never leaves a half-written file; other files in the folder (a ``.gitattributes``) are kept.

    Args:
        model: a model made by ``zoo.create`` or ``zoo.load`` (it records how to rebuild it).
        save_directory: the folder (created if needed).
        history: the ``History`` ``fit`` returned (or its ``to_dict()``), for the card's metrics and recipe.
        license: an SPDX licence id for the front matter (``"mit"``, ``"apache-2.0"``).
        datasets: dataset names for the front matter; default the one the input record names.
        repo_id: ``"user/repo"`` the folder will be uploaded to, for the card's loading example.

    Returns:
        The folder's path.
    """
    from zoo.files import atomic_write
    from zoo.modelfile import save

    target = Path(save_directory)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"save_pretrained writes a folder, and '{target}' is a file")
    config = pretrained_config(model)
    hist = _history_dict(history)
    card = model_card(model, config, history=hist, license=license, datasets=datasets, repo_id=repo_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        save(model, tmp / WEIGHTS_NAME)
        atomic_write(tmp / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=False) + "\n")
        atomic_write(tmp / README_NAME, card)
        if not target.exists():
            os.replace(tmp, target)  # the whole folder appears at once
        else:
            for name in (WEIGHTS_NAME, CONFIG_NAME, README_NAME):
                os.replace(tmp / name, target / name)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return target


# ---------------------------------------------------------------------------------------------------------
# Reading: a folder, a Hugging Face repository
# ---------------------------------------------------------------------------------------------------------


def is_pretrained_source(path: Any) -> bool:
    """``"hf-hub:user/repo"`` or a folder: what ``zoo.load`` reads as the Hugging Face layout."""
    if isinstance(path, str) and path.startswith(HUB_PREFIX):
        return True
    return isinstance(path, (str, os.PathLike)) and os.path.isdir(path)


def _read_config(path: Path) -> dict[str, Any]:
    from zoo.weights import CheckpointError

    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"'{path}' is larger than {MAX_CONFIG_BYTES:,} bytes; a config.json is a few kB")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"'{path}' is not JSON: {type(exc).__name__}: {str(exc)[:120]}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"'{path}' holds a {type(config).__name__}, not a JSON object")
    return config


def zoo_config_of(config: dict[str, Any]) -> dict[str, Any] | None:
    """The ``zoo_config`` a ``config.json`` describes: zoo's own (``name``, ``kwargs``, records), or one made from
    ``architecture`` and timm's ``model_args``; ``None`` when it names no architecture."""
    from zoo.foreign import timm_zoo_config  # a folder timm wrote: its architecture is timm's

    timm_config = timm_zoo_config(config)
    if timm_config is not None:
        return timm_config
    name = config.get("name", config.get("architecture"))
    if name is None:
        return None
    out = {k: v for k, v in config.items() if k not in _LAYOUT_KEYS}
    out["name"] = name
    out["kwargs"] = config.get("kwargs", config.get("model_args")) or {}
    return out


def read_pretrained(source: str | os.PathLike) -> tuple[Path, dict[str, Any] | None]:
    """The weights file of a folder in the Hugging Face layout (or of ``"hf-hub:user/repo"``, from the cache) and
    the ``zoo_config`` its ``config.json`` describes (``None`` without one: the weights' metadata may hold it)."""
    from zoo.weights import CheckpointError

    folder = hub_folder(source) if isinstance(source, str) and source.startswith(HUB_PREFIX) else Path(source)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(
            f"'{folder}' is a folder without {WEIGHTS_NAME}; zoo.load reads a checkpoint file or a folder written by "
            f"zoo.save_pretrained ({WEIGHTS_NAME}, {CONFIG_NAME}, {README_NAME})"
        )
    config_path = folder / CONFIG_NAME
    return weights, zoo_config_of(_read_config(config_path)) if config_path.is_file() else None


def _cache_dir() -> str:
    """Where huggingface_hub keeps repositories, read now (its constants are read once, at its import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def hub_folder(name: str, *, download: bool = False) -> Path:
    """The local folder of ``"hf-hub:user/repo[@revision]"``: from huggingface_hub's cache, or fetched into it
    with ``download=True`` (its three files only)."""
    repo_id, _, revision = name[len(HUB_PREFIX) :].partition("@")
    if not _REPO_ID.match(repo_id):
        raise ValueError(f"'{name}' is not a Hugging Face repository: write hf-hub:<user>/<repo>[@<revision>]")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ImportError(
            f'{name} is read with huggingface_hub, which is not installed: pip install "zoo[hub]"'
        ) from None
    cache = _cache_dir()
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision or None,
            cache_dir=cache,
            allow_patterns=[WEIGHTS_NAME, CONFIG_NAME, README_NAME],
            local_files_only=not download,
        )
    except Exception as exc:
        if download:
            text = " ".join(str(exc).split())[:200]
            raise FileNotFoundError(f"cannot fetch '{name}': {type(exc).__name__}: {text}") from None
        raise FileNotFoundError(
            f"'{name}' is not in the Hugging Face cache (zoo looked in '{cache}'); zoo downloads nothing unless "
            f"asked: zoo.create('{name}', download=True), or huggingface_hub.snapshot_download('{repo_id}')"
        ) from None
    return Path(folder)


def create_from_hub(name: str, *, weights: Any = None, download: bool = False, **kwargs: Any) -> Any:
    """``zoo.create("hf-hub:user/repo", **kwargs)``: the saved model as it was (its input record too), or, with
    keywords, the same architecture built with them and the weights fitted to it (a new head for another
    ``num_classes``, ...: ``zoo.transfer``)."""
    from zoo.modelfile import load
    from zoo.registry import create

    if weights is not None:
        raise TypeError(f"'{name}' names its weights; weights= is not accepted with it")
    model = load(hub_folder(name, download=download))  # every check zoo.load makes of a checkpoint
    if not kwargs:
        return model.train()  # as zoo.create returns a model
    config = model.zoo_config
    return create(config["name"], weights=model.state_dict(), **{**config.get("kwargs", {}), **kwargs})
