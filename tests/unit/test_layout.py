"""The layout's import rules, checked on the source (every import, lazy ones included).

- the core imports neither tornado nor ipywidgets (nor the server or the kernel side);
- the kernel side (client, frames, plots, widgets, cli) never imports the core or the server;
- the hook client imports nothing from the package (agents run it with ``python -S``);
- no two modules of the package import each other, directly or round a longer circle.
"""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "hive_lab"
MODULES: dict[str, Path] = {}
KERNEL_SIDE = ("hive_lab.client", "hive_lab.frames", "hive_lab.plots", "hive_lab.widgets",
               "hive_lab.cli", "hive_lab.taskcli")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _all_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, resolved to absolute names (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:  # "from . import x" names a submodule or a name in mod
                sub = f"{mod}.{alias.name}"
                out.add(sub if sub in MODULES else mod)
    return out


def _graph() -> dict[str, set[str]]:
    return {mod: {m for m in _imports(path) if m in MODULES and m != mod}
            for mod, path in MODULES.items()}


MODULES.update(_all_modules())


def _is(mod: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


def test_the_core_imports_no_web_or_widget_framework() -> None:
    bad = {}
    for path in (PKG / "core").rglob("*.py"):
        found = {m for m in _imports(path)
                 if _is(m, ("tornado", "ipywidgets", "jupyter_server", "hive_lab.server",
                            *KERNEL_SIDE))}
        if found:
            bad[path.name] = found
    assert not bad, bad


def test_orchestration_stays_off_the_server_and_the_kernel_side() -> None:
    for path in (PKG / "orchestrate").rglob("*.py") if (PKG / "orchestrate").exists() else ():
        found = {m for m in _imports(path)
                 if _is(m, ("tornado", "ipywidgets", "hive_lab.server", *KERNEL_SIDE))}
        assert not found, (path.name, found)


def test_the_kernel_side_talks_only_to_the_api() -> None:
    bad = {}
    for mod, path in {_module_name(p): p for p in PKG.rglob("*.py")}.items():
        if not _is(mod, KERNEL_SIDE):
            continue
        found = {m for m in _imports(path) if _is(m, ("hive_lab.core", "hive_lab.server"))}
        if found:
            bad[mod] = found
    assert not bad, bad


def test_the_hook_client_is_standalone() -> None:
    found = {m for m in _imports(PKG / "hook.py") if _is(m, "hive_lab")}
    assert not found, found


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, cycles
