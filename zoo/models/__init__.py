"""The built-in architecture families, one module per family.

A module of this package that defines ``FAMILY`` and the ``register_models`` hook is a family, found here by
:func:`family_modules`: the plugin manager loads each one like a third-party plugin, so adding
``zoo/models/nin.py`` needs no edit anywhere else. The modules in :data:`SHARED` hold code the families share.
"""

from __future__ import annotations

import pkgutil

__all__ = ["SHARED", "family_modules"]

SHARED = ("family", "layers")  # shared code, not families


def family_modules() -> list[str]:
    """The full names of the family modules of this package, sorted (pkgutil lists them without importing)."""
    names = (m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg)
    return [f"{__name__}.{name}" for name in sorted(names) if name not in SHARED and not name.startswith("_")]
