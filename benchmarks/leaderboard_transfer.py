"""The leaderboard's ``--pretrained`` mode: which weights each model starts from, and how it is fine-tuned.

    finetune = FineTune(lr=1e-3, freeze="backbone", unfreeze_at=2)         # stated in config.json and on the page
    run_leaderboard(names, budget, "runs/leaderboard/fashion-mnist-native-cpu-pretrained", finetune=finetune)

Each model is created from weights adapted to the dataset (``zoo.create(name, weights=..., num_classes=,
in_chans=, img_size=)``: a new head, an adapted stem; ``zoo.transfer``) and trained under the same budget and
planner as the from-scratch board. The weights are, in order: a file given for that model (``files``); the tag
``weights`` when given; else the model's first registered tag trained on another dataset than the board's (a
transfer, not the same data again), one whose file is present first. A model without any gets a "no weights" row
saying why; one whose weights are not on this machine, "weights not in the cache".
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

NOT_CACHED = "weights not in the cache: download=True or torch's hub cache"


class NoWeights(Exception):
    """A model has no usable weights for the pretrained board; the message is its row's reason."""


@dataclasses.dataclass
class FineTune:
    """How the pretrained board fine-tunes; saved in the run directory's ``config.json`` under ``"pretrained"``,
    so a pretrained run and a from-scratch run never share a run directory. ``None`` keeps ``zoo.fit``'s default."""

    weights: str | None = None  # one tag for every model ("digits"); None -> each model's own (see the module)
    files: dict[str, str] = dataclasses.field(default_factory=dict)  # model -> weights file (.safetensors / .pt)
    lr: float | None = None  # peak learning rate
    freeze: str | None = None  # "backbone", module-name prefixes (comma-separated), or a number of groups
    unfreeze_at: int | None = None  # epoch (1-based) from which the frozen part trains too
    layer_lr_decay: float | None = None  # discriminative lrs, timm's layer_decay

    def fit_options(self) -> dict[str, Any]:
        """The ``zoo.fit`` keywords of this schedule (the ones set)."""
        options = {"lr": self.lr, "freeze": self.freeze, "unfreeze_at": self.unfreeze_at}
        options["layer_lr_decay"] = self.layer_lr_decay
        if isinstance(options["freeze"], str) and options["freeze"].isdigit():
            options["freeze"] = int(options["freeze"])  # N groups, as the command line gives it
        return {k: v for k, v in options.items() if v is not None}

    def describe(self) -> str:
        """The fine-tuning in one sentence, for the log and the page."""
        if self.files:
            source = "the given files (" + ", ".join(f"{m}: {Path(p).name}" for m, p in sorted(self.files.items()))
            source += ")" + (f", else the tag '{self.weights}'" if self.weights else ", else its own weights")
        elif self.weights:
            source = f"the weights tagged '{self.weights}'"
        else:
            source = "its first registered weights trained on another dataset than the board's (a file present first)"
        options = self.fit_options()
        schedule = ", ".join(f"{k}={v!r}" for k, v in options.items()) if options else "zoo.fit's defaults"
        return (
            f"each model starts from {source}, adapted to the data (a new head, an adapted stem: zoo.transfer), "
            f"then fine-tuned with {schedule}"
        )


def _same_data(a: str | None, b: str | None) -> bool:
    def norm(s: str | None) -> str:
        return (s or "").lower().replace("_", "-").replace(" ", "-")

    return bool(a) and norm(a) == norm(b)


def weights_present(record: Any) -> bool:
    """Whether ``record``'s file is on this machine (shipped, in zoo's cache, or in torch's hub cache)."""
    from zoo import registry
    from zoo.pretrained import locate
    from zoo.weights import hub_file, torchvision_weights

    try:
        if record.torchvision:
            return hub_file(torchvision_weights(record.torchvision, registry.get_spec(record.model))).is_file()
        locate(record)
        return True
    except Exception:  # absent or failing its hash: not usable here
        return False


def choose_weights(name: str, dataset: str, finetune: FineTune) -> tuple[Any, dict[str, Any]]:
    """``(weights for zoo.create, row fields)`` for model ``name`` on the board's ``dataset``: the fields say which
    weights (``weights``, ``weights_dataset``; a file's ``weights_sha256``). ``NoWeights`` says why there are none."""
    from zoo import registry
    from zoo.pretrained import sha256_of

    if name in finetune.files:
        path = Path(finetune.files[name])
        if not path.is_file():
            raise NoWeights(f"no weights: the file '{path}' given for {name} is not there")
        digest = sha256_of(path)
        return str(path), {"weights": path.name, "weights_dataset": None, "weights_sha256": digest}
    records = registry.weights_of(name)
    if finetune.weights:
        chosen = [r for r in records if r.tag == finetune.weights]
        if not chosen:
            tags = ", ".join(r.tag for r in records) or "none"
            raise NoWeights(f"no weights: {name} has no tag '{finetune.weights}' (its tags: {tags})")
    else:
        chosen = [r for r in records if not _same_data(r.dataset, dataset)]
        if not chosen:
            same = ", ".join(r.name for r in records)
            raise NoWeights(
                f"no weights: only {same}, trained on {dataset} itself (not a transfer; --weights TAG uses them)"
                if same
                else "no weights"
            )
    record = next((r for r in chosen if weights_present(r)), None)
    if record is None:
        raise NoWeights(f"{NOT_CACHED} ({chosen[0].name})")
    return record.tag, {"weights": record.name, "weights_dataset": record.dataset}


def create_pretrained(name: str, data: Any, weights: Any, fields: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    """``(model, transfer)``: ``name`` created from ``weights`` (``choose_weights``) adapted to ``data``; ``transfer``
    is what was adapted (``zoo_config["transfer"]``: the new head's keys, the dropped ones, the stem), or None."""
    import warnings

    from zoo import registry
    from zoo.transfer import TransferWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TransferWarning)  # the row records the report instead
        try:
            model = registry.create(
                name, weights=weights, num_classes=data.num_classes, in_chans=data.in_chans, img_size=data.img_size
            )
        except FileNotFoundError:  # the record's file vanished between the look and the load
            raise NoWeights(f"{NOT_CACHED} ({fields['weights']})") from None
    return model, (getattr(model, "zoo_config", None) or {}).get("transfer")
