"""The static import graph of the project's code: which third-party packages each function can import.

Every module of ``shared/`` and ``functions/`` is parsed (nothing is executed). The graph's nodes
are *units* of code that run together: a module's import-time code (module level, class bodies
with their methods, decorators, defaults) and, separately, the body of each of its top-level
functions. A unit reaches the import-time code of every project module it imports, and the
top-level functions it calls or imports by name (``wiring.store()``, ``from x import f``), so a
composition root whose factories import lazily (``shared.wiring``) costs a function only the
factories it calls. Imports inside functions count (a lazy import is still an import the function
can run); imports under ``if TYPE_CHECKING:`` do not (they never run). What the units reached
from ``functions.<name>.handler`` (all of it) import outside the project and the standard library
is the set of top-level modules the function may import at some point of its life.

It over-approximates (a method's lazy import counts as soon as its class's module is imported;
a function reached for one branch counts with all its branches), which is why the layer table of
:mod:`infra.layer.groups` is written by hand and checked against it, with its exceptions named.

:func:`distributions_needed` maps those modules to the distributions that provide them (the dev
venv's metadata, which holds every locked distribution); :func:`chain` explains one.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Final

from infra.layer import ROOT

#: The project's own top-level packages (what the code asset ships).
PROJECT_PACKAGES: Final = ("shared", "functions")

#: A node of the graph: (module, top-level function name, or ``None`` for the module's import-time code).
Node = tuple[str, str | None]


def functions(root: Path = ROOT) -> tuple[str, ...]:
    """Every function of the project (``functions/<name>/handler.py``), sorted."""
    return tuple(sorted(p.parent.name for p in (root / "functions").glob("*/handler.py")))


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name → file, for every module of the project's packages."""
    found: dict[str, Path] = {}
    for package in PROJECT_PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Every node below ``nodes``, skipping the bodies of ``if TYPE_CHECKING:``."""
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(node.orelse)
            continue
        yield node
        yield from _walk(ast.iter_child_nodes(node))


@dataclass
class _Unit:
    """Code that runs together (see the module docstring)."""

    imports: set[str] = field(default_factory=set)  # absolute names (``from a import b`` gives a and a.b)
    names: set[str] = field(default_factory=set)  # bare names used (calls of the module's own functions)
    attributes: set[tuple[str, str]] = field(default_factory=set)  # ``alias.attr`` uses
    bindings: dict[str, str] = field(default_factory=dict)  # local name → absolute name it was imported as


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = (module if is_package else module.rpartition(".")[0]).split(".")
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, node.module] if node.module else parts)


def _scan(unit: _Unit, module: str, is_package: bool, nodes: Iterable[ast.AST]) -> None:
    for node in _walk(nodes):
        if isinstance(node, ast.Import):
            for alias in node.names:
                unit.imports.add(alias.name)
                if alias.asname:
                    unit.bindings[alias.asname] = alias.name
                else:
                    top = alias.name.partition(".")[0]
                    unit.bindings[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node)
            unit.imports.add(base)
            for alias in node.names:
                if alias.name != "*":
                    unit.imports.add(f"{base}.{alias.name}")
                    unit.bindings[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Name):
            unit.names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            unit.attributes.add((node.value.id, node.attr))


def _alias_of(stmt: ast.stmt) -> tuple[str, str, str] | None:
    """``NAME = module.attr`` at module level → (NAME, module, attr): a re-export, not a use."""
    if (
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
        and isinstance(stmt.value, ast.Attribute)
        and isinstance(stmt.value.value, ast.Name)
    ):
        return stmt.targets[0].id, stmt.value.value.id, stmt.value.attr
    return None


@cache
def _aliases(module: str, path: Path) -> dict[str, str]:
    """``module``'s re-exports (``on_connected = _hooks.on_connected``): name → the absolute name it stands for.

    A re-export is followed only where it is used (``wiring.on_connected()``), as the function it names
    would be, not from the module's import-time code: that is what lets ``shared.wiring`` re-export the
    hooks of ``shared.wiring.hooks`` without every function reaching all of them.
    """
    units = _units(module, path)
    found: dict[str, str] = {}
    for stmt in ast.parse(path.read_text(), filename=str(path)).body:
        alias = _alias_of(stmt)
        if alias is not None and alias[1] in units[None].bindings:
            found[alias[0]] = f"{units[None].bindings[alias[1]]}.{alias[2]}"
    return found


@cache
def _units(module: str, path: Path) -> dict[str | None, _Unit]:
    """``module``'s units: ``None`` for its import-time code, then one per top-level function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    units: dict[str | None, _Unit] = {None: _Unit()}
    at_import: list[ast.AST] = []
    for stmt in tree.body:
        if _alias_of(stmt) is not None:
            continue  # a re-export: see _aliases
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            at_import += [*stmt.decorator_list, stmt.args]
            if stmt.returns is not None:
                at_import.append(stmt.returns)
            units[stmt.name] = _Unit()
        else:
            at_import.append(stmt)
    _scan(units[None], module, is_package, at_import)
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            _scan(units[stmt.name], module, is_package, stmt.body)
    return units


def imports_of(module: str, path: Path) -> set[str]:
    """Absolute names ``module`` imports anywhere (``from a import b`` gives ``a`` and ``a.b``: b may be a module)."""
    out: set[str] = set()
    for unit in _units(module, path).values():
        out |= unit.imports
    return out


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _edges(node: Node, modules: dict[str, Path]) -> Iterator[tuple[str, Node | None]]:
    """(what, next node) for every step out of ``node``; ``None`` as next node: ``what`` is an external import."""
    module, name = node
    units = _units(module, modules[module])
    unit = units[name]
    bindings = {**units[None].bindings, **unit.bindings}

    def to(target: str) -> Iterator[Node]:
        for parent in _with_parents(target):
            if parent in modules:
                yield (parent, None)
        head, _, tail = target.rpartition(".")
        if target not in modules and head in modules:
            if tail in _units(head, modules[head]):
                yield (head, tail)
            elif tail in (aliases := _aliases(head, modules[head])):
                yield from to(aliases[tail])

    for imported in sorted(unit.imports):
        top = imported.partition(".")[0]
        if top in PROJECT_PACKAGES:
            for step in to(imported):
                yield imported, step
        elif top and top not in sys.stdlib_module_names and top != "__future__":
            yield imported, None
    for used in sorted(unit.names):
        if used in units and used != name:
            yield used, (module, used)
    for alias, attr in sorted(unit.attributes):
        target = bindings.get(alias)
        if target and target.partition(".")[0] in PROJECT_PACKAGES:
            for step in to(f"{target}.{attr}"):
                yield f"{target}.{attr}", step


def _search(function: str, root: Path, external: str | None) -> tuple[set[Node], set[str], list[str]]:
    modules = project_modules(root)
    start = f"functions.{function}.handler"
    if start not in modules:
        raise KeyError(f"no such function: {function}")
    # the handler module: all of it (its functions are the entry points)
    first: list[Node] = [(m, None) for m in _with_parents(start) if m in modules]
    first += [(start, name) for name in _units(start, modules[start]) if name is not None]
    parents: dict[Node, Node | None] = dict.fromkeys(first)
    queue = list(first)
    found: set[str] = set()
    while queue:
        node = queue.pop(0)
        for what, step in _edges(node, modules):
            if step is None:
                top = what.partition(".")[0]
                found.add(top)
                if top == external:
                    path = [what]
                    back: Node | None = node
                    while back is not None:
                        path.append(back[0] if back[1] is None else f"{back[0]}:{back[1]}()")
                        back = parents[back]
                    return set(parents), found, path[::-1]
            elif step not in parents:
                parents[step] = node
                queue.append(step)
    return set(parents), found, []


def reachable(function: str, root: Path = ROOT) -> tuple[frozenset[Node], frozenset[str]]:
    """(units of project code, external top-level modules) reachable from ``functions.<function>.handler``."""
    nodes, external, _ = _search(function, root, None)
    return frozenset(nodes), frozenset(external)


def chain(function: str, external: str, root: Path = ROOT) -> list[str]:
    """A shortest import chain from ``functions.<function>.handler`` to the top-level module ``external``.

    Steps are modules (their import-time code) or ``module:function()`` (a function's body); the
    last is the imported name. ``[]`` when the function cannot reach it.
    """
    return _search(function, root, external)[2]


@cache
def _owners() -> dict[str, frozenset[str]]:
    owners: dict[str, set[str]] = {}
    for module, dists in metadata.packages_distributions().items():
        owners.setdefault(module, set()).update(canonical(d) for d in dists)
    return {module: frozenset(dists) for module, dists in owners.items()}


def distributions_needed(function: str, root: Path = ROOT) -> dict[str, frozenset[str]]:
    """Top-level module → the distributions that can provide it, for every external import of ``function``.

    ``urllib3`` is provided by both ``urllib3`` and ``urllib3-future`` (which overwrites it in a
    venv); a module no installed distribution provides maps to an empty set.
    """
    _, external = reachable(function, root)
    return {module: _owners().get(module, frozenset()) for module in sorted(external)}


def canonical(name: str) -> str:
    """PEP 503 normalised name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> int:
    """``python -m infra.layer.graph``: each function's third-party imports and, for each, one chain."""
    for function in functions():
        _, external = reachable(function)
        print(f"{function}:")
        for module in sorted(external):
            print(f"  {module:22} {' -> '.join(chain(function, module))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
