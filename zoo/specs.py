"""What the registry holds: a model's spec and card, a dataset's spec, a model source, a plugin's report.

``ModelSpec`` is what a plugin registers (the builder and its metadata); ``ModelCard`` is what users read
(``zoo.info``, ``zoo list``, ``zoo info``); ``Reported`` is one published result on a card; ``PluginInfo`` is one
row of ``zoo.plugins()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Reported", "ModelSpec", "ModelCard", "DatasetSpec", "SourceSpec", "PluginInfo"]


@dataclass(frozen=True)
class Reported:
    """One published result of a model: ``Reported("ImageNet-1k", "top-1", 69.778, "torchvision
    GoogLeNet_Weights.IMAGENET1K_V1")`` or ``Reported("MNIST", "test error %", 0.95, "LeCun et al. 1998, Fig. 14")``.

    ``metric`` carries its unit and direction (``"top-1"`` is accuracy in %, ``"top-5 error %"`` an error rate);
    ``source`` names the paper and the table or figure, or the weights whose metadata gave the value.
    """

    dataset: str
    metric: str
    value: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.dataset} {self.metric} {self.value:g} ({self.source})"


@dataclass(frozen=True)
class ModelSpec:
    """One registered architecture: its builder and what its plugin declared about it."""

    name: str
    builder: Callable[..., Any]
    plugin: str
    plugin_version: str | None = None
    family: str | None = None
    paper: str | None = None
    year: int | None = None
    input_size: tuple[int, int, int] | None = None
    num_classes: int | None = None
    tags: tuple[str, ...] = ()
    description: str | None = None
    url: str | None = None
    notes: str | None = None
    num_params: int | None = None
    convert_weights: Callable[[dict], dict] | None = field(default=None, repr=False)
    keywords: tuple[str, ...] | None = None  # what a **kwargs builder accepts, declared at registration
    reported: tuple[Reported, ...] = ()  # the paper's published results
    twin: str | None = None  # the torchvision builder this model equals (parameters, state dict)
    twin_kwargs: tuple[tuple[str, Any], ...] = field(default=(), repr=False)  # keywords the twin's weights imply

    @property
    def source(self) -> str:
        """``"zoo"`` for names of the main catalogue, else the prefix of the source that owns the name."""
        return self.name.split("/", 1)[0] if "/" in self.name else "zoo"


@dataclass(frozen=True)
class ModelCard:
    """What ``zoo.info(name)`` returns: the spec's metadata plus the parameter count at defaults.

    ``reported`` lists published results: for a torchvision twin first the acc@1 and acc@5 of torchvision's default
    weights (read from torchvision's metadata when the card is built), then the paper's figures."""

    name: str
    family: str | None
    paper: str | None
    year: int | None
    input_size: tuple[int, int, int] | None
    num_classes: int | None
    num_params: int | None
    plugin: str
    plugin_version: str | None
    tags: tuple[str, ...] = ()
    description: str | None = None
    url: str | None = None
    notes: str | None = None
    twin: str | None = None
    reported: tuple[Reported, ...] = ()
    weights: tuple[Any, ...] = ()  # zoo.pretrained.WeightsRecord of each tag (zoo.create("name.tag"))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size else None
        d["tags"] = list(self.tags)
        d["reported"] = [r.to_dict() for r in self.reported]
        d["weights"] = [w.to_dict() for w in self.weights]
        return d

    def top1(self, dataset: str = "ImageNet-1k") -> Reported | None:
        """The first ``top-1`` accuracy on ``dataset`` (torchvision's for a twin, else the paper's), or ``None``."""
        return next((r for r in self.reported if r.metric == "top-1" and r.dataset == dataset), None)

    def __str__(self) -> str:
        size = "x".join(map(str, self.input_size)) if self.input_size else "?"
        params = f"{self.num_params:,}" if self.num_params is not None else "?"
        paper = self.paper or "?"
        if self.year:
            paper = f"{paper} ({self.year})"
        rows = [
            ("name", self.name),
            ("family", self.family or "?"),
            ("paper", paper),
            ("input", size),
            ("classes", self.num_classes if self.num_classes is not None else "?"),
            ("params", params),
            ("plugin", f"{self.plugin} {self.plugin_version or ''}".strip()),
        ]
        if self.tags:
            rows.append(("tags", ", ".join(self.tags)))
        if self.description:
            rows.append(("description", self.description))
        if self.notes:
            rows.append(("notes", self.notes))
        if self.twin:
            rows.append(("torchvision", f"{self.twin} (weights= takes its weights)"))
        rows.extend(("reported" if i == 0 else "", str(r)) for i, r in enumerate(self.reported))
        rows.extend(("weights" if i == 0 else "", f"{w.name}: {w.summary()}") for i, w in enumerate(self.weights))
        if self.url:
            rows.append(("url", self.url))
        return "\n".join(f"{k:<12} {v}" for k, v in rows)


@dataclass(frozen=True)
class DatasetSpec:
    """One registered dataset."""

    name: str
    loader: Callable[..., Any]
    plugin: str
    plugin_version: str | None = None
    num_classes: int | None = None
    input_size: tuple[int, int, int] | None = None
    description: str | None = None
    url: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceSpec:
    """A lazily enumerated catalogue under a prefix (the timm and torchvision bridges)."""

    prefix: str
    list_names: Callable[[], Iterable[str]]
    get_model: Callable[[str], tuple[Callable[..., Any], dict[str, Any]]]
    plugin: str
    plugin_version: str | None = None
    description: str | None = None
    url: str | None = None


@dataclass
class PluginInfo:
    """A row of ``zoo.plugins()``."""

    name: str
    version: str | None
    kind: str  # "builtin", "entry point", "in-process"
    status: str = "ok"  # "ok", "partial" (some registrations refused), "failed"
    errors: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)  # "model.tag" of the weights it registered

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
