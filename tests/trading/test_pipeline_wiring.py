"""Wiring of the project (issue 10, item 5): one settings accessor, signals connected in
AppConfig.ready(), no import cycles between modules, no imports hidden inside the order path's
functions."""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Every Django app of the project (each has an apps.py), not only the order path's.
APPS = tuple(sorted(p.parent.name for p in ROOT.glob("*/apps.py")))


def _sources():
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if "/migrations/" in rel or "/settings/" in rel or "bench" in rel:
                continue
            yield rel, path.read_text()


def _reads_settings_kk99(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "KK99" and isinstance(node.value, ast.Name) and node.value.id == "settings":
            return True
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and len(node.args) >= 2:
            if isinstance(node.args[1], ast.Constant) and node.args[1].value == "KK99":
                return True
    return False


def test_only_the_one_accessor_reads_settings_kk99():
    readers = {rel for rel, text in _sources() if _reads_settings_kk99(ast.parse(text))}
    assert readers == {"kk99/conf.py"}


def _module_level_connects(tree: ast.Module) -> list[int]:
    lines = []
    for stmt in tree.body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect":
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    lines.append(node.lineno)
    return lines


def test_signals_are_connected_only_in_app_config_ready():
    offenders = {rel: lines for rel, text in _sources() if not rel.endswith("apps.py") and (lines := _module_level_connects(ast.parse(text)))}
    assert offenders == {}


@pytest.mark.parametrize("rel", ["trading/orders.py", "trading/holds.py", "trading/services.py", "trading/selectors.py", "trading/payloads.py", "trading/forms.py", "trading/binance/errors.py", "risk/services.py"])
def test_the_order_path_has_no_imports_inside_functions(rel):
    tree = ast.parse((ROOT / rel).read_text())
    inner = [
        node.lineno
        for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    assert inner == []


def _module_name(rel: str) -> str:
    name = rel[:-3].replace("/", ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def _runtime_imports(module: str, tree: ast.Module, modules: set[str], packages: set[str]) -> set[str]:
    """The project modules ``module`` imports when it is imported: module-level statements
    (class bodies, ``try``/``if`` blocks included), not function bodies and not
    ``if TYPE_CHECKING:`` blocks. Parent packages imported implicitly are not counted."""
    out: set[str] = set()

    def record(stmt):
        if isinstance(stmt, ast.Import):
            out.update(a.name for a in stmt.names)
            return
        base = stmt.module or ""
        if stmt.level:
            parts = module.split(".") if module in packages else module.split(".")[:-1]
            parts = parts[: len(parts) - (stmt.level - 1)]
            base = ".".join([*parts, base] if base else parts)
        out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in stmt.names)

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(ast.Module(body=child.orelse, type_ignores=[]))
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                record(child)
            visit(child)

    visit(tree)
    return {m for m in out if m in modules and m != module}


def import_cycles(sources: dict[str, str]) -> list[list[str]]:
    """Strongly connected groups of more than one module in the module-level import graph."""
    modules = {_module_name(rel) for rel in sources}
    packages = {_module_name(rel) for rel in sources if rel.endswith("__init__.py")}
    graph = {_module_name(rel): _runtime_imports(_module_name(rel), ast.parse(text), modules, packages) for rel, text in sources.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def strong(v):  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                group.append(w)
            if group:
                cycles.append(sorted([v, *group]))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return cycles


def test_the_cycle_finder_finds_a_cycle_and_ignores_type_checking_and_function_imports():
    sources = {
        "a/__init__.py": "",
        "a/x.py": "from a import y\n",
        "a/y.py": "from a.x import f\n",
        "a/z.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from a import w\ndef g():\n    from a import w\n",
        "a/w.py": "from . import z\n",
    }
    assert import_cycles(sources) == [["a.x", "a.y"]]


def test_no_import_cycles_between_the_apps_modules():
    sources = dict(_sources())
    assert import_cycles(sources) == []
