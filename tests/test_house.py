"""The house rules that code can check: one parser (no argparse in the package), modules of at
most 500 lines and functions of at most 80, and imports at the top of modules that only go down
(no import circles)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gan_colorize"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 80


def _tree(path):
    return ast.parse(path.read_text(), filename=str(path))


def _imported(tree, path, top_only=False):
    """Absolute names of the modules `tree` imports (relative imports resolved in the package);
    top_only: only the imports of the module body, not those deferred inside functions."""
    nodes = tree.body if top_only else list(ast.walk(tree))
    if top_only:   # module-level imports inside if / try blocks count too
        nodes = [n for top in tree.body if not isinstance(top, (ast.FunctionDef, ast.ClassDef,
                                                                ast.AsyncFunctionDef))
                 for n in ast.walk(top)]
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = parts if parts[-1] == "__init__" else parts[:-1]
    package = [p for p in package if p != "__init__"]
    out = set()
    for n in nodes:
        if isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            base = package[:len(package) - n.level + 1] if n.level else []
            mod = ".".join(base + ([n.module] if n.module else []))
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in n.names}   # `from . import x` imports module x
    return out


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_imports_argparse():
    """Every tool parses its command line with core/parser.py (masks, dedup, export included)."""
    users = [str(p.relative_to(PACKAGE)) for p in MODULES
             if any(m == "argparse" or m.startswith("argparse.") for m in _imported(_tree(p), p))]
    assert users == []


def test_the_argparse_check_can_fail(tmp_path):
    fake = PACKAGE / "core" / "x.py"
    tree = ast.parse("def f():\n    import argparse\n")
    assert "argparse" in _imported(tree, fake)
    assert "argparse" in _imported(ast.parse("from argparse import ArgumentParser\n"), fake)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_and_function_sizes(path):
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(_tree(path))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def test_no_import_circles_at_module_level():
    names = {_module_name(p): p for p in MODULES}
    graph = {m: {d for d in _imported(_tree(p), p, top_only=True) if d in names and d != m}
             for m, p in names.items()}
    # a package's __init__ is imported on the way to its modules: not an edge back up
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    assert "gan_colorize.data.hints" in graph["gan_colorize.apps.api"]   # it sees the edges
    state, circles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                circles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert circles == []
