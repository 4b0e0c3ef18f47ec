"""The import graph and functions of moodpo/ and ui/, read with `ast`: no cycles, no module importing
another module's private (underscore) name, no function longer than a screen. All three made the
middle of the package hard to change (issue 16)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("moodpo", "ui")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def imports(module: str, tree: ast.Module):
    """(imported module, name or None, line) for every import in the module, at any depth (an import
    inside a function closes a cycle at run time as surely as one at the top)."""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:  # `from moodpo import commands`: a module
                    yield f"{base}.{alias.name}", None, node.lineno
                else:
                    yield base, alias.name, node.lineno


def graph() -> dict[str, set[str]]:
    return {m: {target for target, _, _ in imports(m, ast.parse(p.read_text())) if target in MODULES and target != m}
            for m, p in MODULES.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_modules_are_found():
    assert {"moodpo.runs", "moodpo.train.trainer", "moodpo.objectives.base", "ui.layout", "ui.steer_tab"} <= set(MODULES)


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_crosses_modules(module):
    tree = ast.parse(MODULES[module].read_text())
    found = [f"line {line}: from {target} import {name}" for target, name, line in imports(module, tree)
             if target in MODULES and target != module and name and is_private(name)]
    # `import moodpo.eval.evaluate as ev; ev._jsonl(...)`: a private attribute of an imported module.
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({a.asname or a.name: a.name for a in node.names if a.name in MODULES})
        elif isinstance(node, ast.ImportFrom):
            for target, name, _ in imports(module, ast.Module(body=[node], type_ignores=[])):
                if name is None and target in MODULES:
                    aliases[target.rpartition(".")[2]] = target
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and is_private(node.attr):
            target = aliases.get(node.value.id)
            if target and target != module:
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    assert not found, f"{module} uses private names of other modules: {found}"


MAX_FUNCTION_LINES = 80


def test_no_function_is_longer_than_a_screen():
    """A function that does not fit on a screen usually interleaves several features (issue 16)."""
    long = [f"{module}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
            for module, path in MODULES.items() for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
