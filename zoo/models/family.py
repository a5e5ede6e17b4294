"""One registration pattern for every built-in family.

A family file declares what its variants share once, puts each variant's numbers in its builder (timm's habit)
and its card in the decorator just above, and hands them all to the registry through the same ``register``
callback as any third-party plugin::

    FAMILY = Family("densenet", DenseNet, paper=PAPER, year=2017, url=URL, convert_weights=convert_weights)

    @FAMILY.variant(input_size=(3, 224, 224), num_classes=1000, description="...")
    def densenet121(**kwargs) -> DenseNet:
        \"\"\"DenseNet-121 (Huang et al., 2017).\"\"\"
        return _create_densenet("densenet121", kwargs, growth_rate=32, block_config=(6, 12, 24, 16))

    @hookimpl
    def register_models(register):
        FAMILY.register_all(register)

The keywords a builder accepts are the model class's keyword-only parameters, declared to the registry
(``keywords=``), so ``zoo.create`` refuses a misspelt one before anything is built, with the nearest valid name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["Family", "keyword_only_params", "merge_variant"]


def keyword_only_params(cls: type, exclude: tuple[str, ...] = ("name",)) -> list[str]:
    """The keyword-only parameters of ``cls.__init__``: what a builder of that class accepts."""
    params = inspect.signature(cls).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in exclude]


def merge_variant(kwargs: dict[str, Any], **variant: Any) -> dict[str, Any]:
    """A variant's numbers overridden by the user's keywords (``dict(model_args, **kwargs)`` in timm)."""
    return {**variant, **kwargs}


class Family:
    """The card fields a family's variants share, and the list of its variant builders in registration order.

    Args:
        name: the family name shown by ``zoo list`` and used by ``zoo compare --family``.
        model_cls: the model class; its keyword-only parameters are what the builders accept.
        **card: registration metadata every variant shares (``paper``, ``year``, ``url``, ``tags``, ``notes``,
            ``convert_weights``, ...); a variant's own value replaces the family's.
    """

    def __init__(self, name: str, model_cls: type, **card: Any) -> None:
        self.name = name
        self.keywords = tuple(keyword_only_params(model_cls))
        self.card = {"family": name, **card}
        self.variants: list[tuple[Callable[..., Any], dict[str, Any]]] = []

    def variant(self, **card: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register the builder below under its function name with the family's card plus ``card``
        (``notes`` are appended to the family's; everything else replaces it). The description defaults to the
        first line of the builder's docstring."""

        def add(builder: Callable[..., Any]) -> Callable[..., Any]:
            merged = {**self.card, **card, "keywords": self.keywords}
            if "description" not in merged and builder.__doc__:
                merged["description"] = builder.__doc__.strip().splitlines()[0]
            if "notes" in card and "notes" in self.card:
                merged["notes"] = f"{card['notes']} {self.card['notes']}"
            self.variants.append((builder, merged))
            return builder

        return add

    def register_all(self, register: Callable[..., None]) -> None:
        """Hand every variant to the registry's ``register`` callback, in the order they were declared."""
        for builder, card in self.variants:
            register(builder.__name__, builder, **card)
