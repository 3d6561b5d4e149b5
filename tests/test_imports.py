"""The package imports point one way: no module of fastnn imports (directly or through
others, at module level or inside a function) a module that imports it back."""

import ast
import pathlib

import fastnn

ROOT = pathlib.Path(fastnn.__file__).parent


def _imports():
    """{module name: set of fastnn modules it imports}."""
    names = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        names[".".join(parts)] = path
    graph = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(max(node.level - 1, 0)):
                    base = base.rsplit(".", 1)[0]
                mod = (
                    node.module
                    if not node.level
                    else (f"{base}.{node.module}" if node.module else base)
                )
                for alias in node.names:
                    deps.add(f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in names else mod)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d in names and d != name}
    return graph


def test_no_import_cycles():
    graph = _imports()
    packages = {
        "fastnn",
        "fastnn.layers",
        "fastnn.datasets",
        "fastnn.diagnostics",
        "fastnn.commands",
        "fastnn.bench",
    }  # re-exporting __init__ files
    edges = {n: {d for d in deps if d not in packages} for n, deps in graph.items()}
    state, cycles = {}, []

    def visit(n, stack):
        state[n] = "active"
        for d in sorted(edges[n]):
            if state.get(d) == "active":
                cycles.append(stack[stack.index(d) :] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[n] = "done"

    for n in sorted(edges):
        if n not in state:
            visit(n, [n])
    assert not cycles, f"import cycles: {cycles}"
