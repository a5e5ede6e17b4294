"""One home per public name: every name is defined in one zoo module and imported from there (or from ``zoo`` and a
package's ``__init__``, the public faces); ``zoo/__init__.py`` declares its names once."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import zoo

ROOT = Path(zoo.__file__).parent
REPO = ROOT.parent

# Hubs whose owners remove them in their own branches (helpers "record" and "state"); delete at merge.
PENDING: set[str] = set()  # modules whose hub is being removed in a branch not yet merged


def modules() -> list[str]:
    found = [m.name for m in pkgutil.walk_packages([str(ROOT)], prefix="zoo.")]
    return ["zoo"] + [m for m in found if m != "zoo.__main__"]  # importing __main__ runs the CLI


def is_package(name: str) -> bool:
    return hasattr(importlib.import_module(name), "__path__")


def tree_of(name: str) -> ast.Module:
    module = importlib.import_module(name)
    return ast.parse(Path(module.__file__).read_text())


def assigned_at_top(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                parts = target.elts if isinstance(target, ast.Tuple) else [target]
                names.update(t.id for t in parts if isinstance(t, ast.Name))
    return names


def home_of(obj, name: str, module: str) -> str | None:
    """The module that defines ``obj``: its ``__module__`` for functions and classes; for a constant, ``module``
    if ``module`` assigns it, else ``None`` (it came from elsewhere)."""
    if inspect.isfunction(obj) or inspect.isclass(obj):
        return obj.__module__
    return module if name in assigned_at_top(tree_of(module)) else None


def exported(name: str) -> set[str]:
    """What a module offers to be imported from it: its ``__all__``, and the zoo names it imports without using
    them (the re-export hub)."""
    module = importlib.import_module(name)
    tree = tree_of(name)
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zoo")
        for alias in node.names
    }
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    # names used only inside annotations written as strings
    used |= {w for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             for w in re.findall(r"[A-Za-z_]\w*", n.value)}  # fmt: skip
    return set(getattr(module, "__all__", ())) | {n for n in imported - used if not n.startswith("_")}


@pytest.mark.parametrize("name", [m for m in modules() if not is_package(m)])
def test_a_module_offers_only_the_names_it_defines(name):
    if name in PENDING:
        pytest.skip("its owner removes this hub in another branch")
    module = importlib.import_module(name)
    foreign = {}
    for public in sorted(exported(name)):
        home = home_of(getattr(module, public), public, name)
        if home != name:
            foreign[public] = home
    assert not foreign, f"{name} re-exports {foreign}: import them from their home instead"
    assert "__getattr__" not in vars(module), f"{name} has a module __getattr__ (a shim); only packages may"


def import_lines(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from zoo... import name`` in a Python file or in a page's python blocks."""
    text = path.read_text()
    if path.suffix == ".md":
        text = "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "zoo" and node.level == 0:
            found += [(node.module, alias.name) for alias in node.names]
    return found


def sources() -> list[Path]:
    files = [*ROOT.rglob("*.py"), *(REPO / "tests").glob("*.py"), *(REPO / "benchmarks").rglob("*.py")]
    return files + sorted((REPO / "docs").glob("*.md"))


def test_every_import_names_the_home_of_what_it_imports():
    wrong = []
    for path in sources():
        for module_name, name in import_lines(path):
            if module_name in PENDING or is_package(module_name) or name == "*":
                continue  # a package's __init__ is a public face; it may gather its modules' names
            value = getattr(importlib.import_module(module_name), name, None)
            if value is None or inspect.ismodule(value):
                continue
            home = home_of(value, name, module_name)
            if home != module_name:
                wrong.append(f"{path.relative_to(REPO)}: from {module_name} import {name} (defined in {home})")
    assert not wrong, "\n".join(wrong)


def test_zoo_names_each_public_name_once():
    tree = ast.parse((ROOT / "__init__.py").read_text())
    typed = {}  # the TYPE_CHECKING imports
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                typed.update({alias.name: stmt.module for alias in stmt.names})
    lazy = zoo._LAZY
    assert typed == {**lazy, "testing": "zoo"}
    assert zoo.__all__ == ["__version__", "hookimpl", "testing", *lazy]
    for name, module_name in lazy.items():
        value = getattr(zoo, name)
        home = value.__module__
        assert home == module_name or (is_package(module_name) and home.startswith(module_name + ".")), name
        assert getattr(importlib.import_module(module_name), name) is value
