"""The package's layout, read from the source with ``ast`` (nothing is imported): imports flow one
way through the layers, imports sit at module level unless listed here with a reason, and no
module is over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "scbjax"
ORDER = ("util", "core", "optim", "sim", "engine", "studies", "app")  # lower to higher
EXEMPT = ("scbjax/__init__.py", "scbjax/__main__.py")  # the public API may import any layer
MAX_LINES = 400

# Imports inside a function body: (module, function, what it imports) -> why it is not at the top.
INNER = {
    ("scbjax/util/backend.py", "_backend_initialised", "jax._src.xla_bridge"):
        "jax's private API, read only to warn; a move there must skip the check, not break "
        "`import scbjax`",
    ("scbjax/util/backend.py", "use_partitionable_threefry", "jax"):
        "scbjax/__init__.py sets XLA_FLAGS (the jaxlib 0.10.2 guard) before JAX is imported",
    ("scbjax/app/bench_grid.py", "plot_grid", "matplotlib"):
        "matplotlib (and its Agg backend) only for a bench grid with a figure",
    ("scbjax/app/bench_grid.py", "plot_grid", "matplotlib.pyplot"):
        "matplotlib (and its Agg backend) only for a bench grid with a figure",
    ("scbjax/app/bench_grid.py", "figure_formats", "matplotlib.backend_bases.FigureCanvasBase"):
        "matplotlib only for a bench grid with a figure (its formats, checked before the run)",
    ("scbjax/engine/tables.py", "pandas", "pandas"):
        "pandas is an optional extra (scbjax[tables]), only for Runs.to_dataframe / curves",
}


def modules() -> dict[str, ast.Module]:
    """Every module of scbjax/ by its path relative to the repository root."""
    root = PKG.parent
    return {p.relative_to(root).as_posix(): ast.parse(p.read_text(), str(p))
            for p in sorted(PKG.rglob("*.py"))}


def dotted(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.Module, path: str):
    """(line, target module) of every import in the module, relative ones resolved."""
    package = dotted(path) if path.endswith("__init__.py") else dotted(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base == "scbjax":  # `from scbjax import core` is the subpackage
                yield from ((node.lineno, f"scbjax.{a.name}" if a.name in ORDER else base)
                            for a in node.names)
            else:
                yield node.lineno, base


def layer_of(target: str, root_layer: int) -> int | None:
    """Index in ORDER of an scbjax module; the bare package counts as the highest layer that
    scbjax/__init__.py imports; None outside scbjax."""
    parts = target.split(".")
    if parts[0] != "scbjax":
        return None
    return root_layer if len(parts) == 1 else ORDER.index(parts[1])


def upward(mods: dict[str, ast.Module]) -> list[str]:
    """Every import of a higher layer than the importing module's, as 'path:line: target'."""
    root = [layer_of(t, 0) for _, t in imported(mods["scbjax/__init__.py"], "scbjax/__init__.py")]
    root_layer = max(x for x in root if x is not None)
    bad = []
    for path, tree in mods.items():
        if path in EXEMPT:
            continue
        own = ORDER.index(path.split("/")[1])
        for line, target in imported(tree, path):
            k = layer_of(target, root_layer)
            if k is not None and k > own:
                bad.append(f"{path}:{line}: {target} ({ORDER[k]} above {ORDER[own]})")
    return bad


def inner_imports(mods: dict[str, ast.Module]) -> set[tuple[str, str, str]]:
    """(path, function, target) of every import statement inside a function body."""
    found = set()

    def visit(node, path, func):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, path, getattr(child, "name", "<lambda>"))
            elif func and isinstance(child, ast.Import):
                found.update((path, func, a.name) for a in child.names)
            elif func and isinstance(child, ast.ImportFrom):
                found.update((path, func, f"{child.module}.{a.name}") for a in child.names)
            else:
                visit(child, path, func)

    for path, tree in mods.items():
        visit(tree, path, None)
    return found


def test_imports_flow_one_way_through_the_layers():
    mods = modules()
    assert {p.split("/")[1] for p in mods if p not in EXEMPT} == set(ORDER), \
        "a package of scbjax/ not in ORDER (or a module at the top of scbjax/)"
    assert upward(mods) == []


def test_the_layer_check_sees_an_upward_import():
    mods = modules()
    mods["scbjax/core/task.py"].body.append(ast.parse("from scbjax.sim import train").body[0])
    mods["scbjax/optim/l1.py"].body.append(ast.parse("from ..engine import spec").body[0])
    mods["scbjax/util/fields.py"].body.append(ast.parse("from scbjax import Phase").body[0])
    mods["scbjax/engine/store.py"].body.append(ast.parse("from scbjax import app").body[0])
    assert [b.split(":")[0] for b in upward(mods)] == [
        "scbjax/core/task.py", "scbjax/engine/store.py", "scbjax/optim/l1.py",
        "scbjax/util/fields.py"]


def test_imports_are_at_module_level_but_the_listed_ones():
    assert inner_imports(modules()) == set(INNER)


def test_the_inner_import_check_sees_one_in_a_method():
    mods = modules()
    src = "class C:\n    def m(self):\n        import numpy\n        return numpy"
    mods["scbjax/core/task.py"].body.append(ast.parse(src).body[0])
    assert inner_imports(mods) - set(INNER) == {("scbjax/core/task.py", "m", "numpy")}


def test_no_module_is_over_400_lines():
    long = {p: n for p in sorted(PKG.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
