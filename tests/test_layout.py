"""The tree shows the flow: imports run one way, and nothing imports in a circle.

leaves -> protocols -> records, data -> models -> methods, attacks -> train -> eval -> run -> cli.
The leaderboard reads records only: it imports `bench.records` and `bench.protocols`, nothing
else of bench. Imports are read with `ast` (nothing is imported), including those inside
functions.
"""

import ast
from pathlib import Path
from typing import get_args

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "methods", "attacks", "leaderboard")

# Lowest first; a module may import from its own layer and those below, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("bench", "bench.errors", "bench.files", "bench.faults", "bench.progress", "bench.harness",
     "bench.robustbench_compat"),
    ("bench.checkpoints", "bench.provenance"),
    ("bench.protocols",),
    ("bench.records", "bench.data"),
    ("bench.models",),
    ("methods", "attacks"),
    ("bench.train", "bench.plugin_check"),
    ("bench.eval",),
    ("bench.run", "bench.report", "bench.robustbench_export"),
    ("bench.cli", "bench.cli_export", "bench.scaffold", "bench.perf", "bench.doctor",
     "bench.serve"),
)
LEADERBOARD_MAY_IMPORT = ("bench.records", "bench.protocols")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            parts = f.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports (a `from pkg import sub` names pkg.sub when it is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in (*parts, base) if p)
            subs = {f"{base}.{a.name}" for a in node.names} & set(MODULES)
            found |= subs or {base}
    return {m for m in found if m.split(".")[0] in PACKAGES and m != name
            and not name.startswith(m + ".")}  # a submodule "imports" its package's __init__


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer(module: str) -> int | None:
    best = None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and (best is None or len(n) > best[1]):
                best = (i, len(n))
    return None if best is None else best[0]


def test_every_bench_methods_and_attacks_module_has_a_layer():
    missing = [m for m in MODULES if not m.startswith("leaderboard") and layer(m) is None]
    assert not missing, f"add these modules to LAYERS: {missing}"


def test_imports_run_one_way():
    upward = [f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
              for m, deps in GRAPH.items() if not m.startswith("leaderboard")
              for d in deps if layer(d) is not None and layer(d) > layer(m)]
    assert not upward, "\n".join(upward)


def test_leaderboard_reads_records_and_protocols_only():
    bad = [f"{m} imports {d}" for m, deps in GRAPH.items() if m.startswith("leaderboard")
           for d in deps if d.startswith("bench")
           and not any(d == ok or d.startswith(ok + ".") for ok in LEADERBOARD_MAY_IMPORT)]
    assert not bad, "\n".join(bad)
    assert not [m for m, deps in GRAPH.items() if not m.startswith("leaderboard")
                for d in deps if d.startswith("leaderboard")], "nothing imports the leaderboard"


def test_no_import_circles():
    """Package __init__ files that re-export their submodules are not circles: the edges from a
    package to its own submodules are left out."""
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in GRAPH.items()}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for d in sorted(graph.get(node, ())):
            if state.get(d) == "open":
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[node] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_records_are_torch_free():
    heavy = [f"{m} imports {d}" for m, deps in GRAPH.items()
             if m.startswith("bench.records") for d in deps
             if not d.startswith(("bench.records", "bench.errors", "bench.files",
                                  "bench.protocols"))]
    assert not heavy, "\n".join(heavy)
    for name, path in MODULES.items():
        if name.startswith("bench.records") or name == "bench.protocols":
            assert "import torch" not in path.read_text(), name


def test_modules_are_short_or_say_why():
    long = [f"{m}: {n} lines" for m, p in MODULES.items()
            if (n := len(p.read_text().splitlines())) > 320
            and "long because" not in p.read_text()[:2000]]
    assert not long, "\n".join(long)


@pytest.mark.parametrize("literal, registry", [
    ("Dataset", "bench.data:DATASETS"), ("Arch", "bench.models:ARCHS"),
    ("CorruptionSuite", "attacks.corruptions:SUITES")])
def test_protocol_name_types_list_what_the_registries_hold(literal, registry):
    import importlib

    import bench.protocols as protocols
    module, attr = registry.split(":")
    assert set(get_args(getattr(protocols, literal))) == set(getattr(importlib.import_module(module), attr))


def test_teacher_methods_are_methods_without_a_teacher():
    import methods
    import bench.protocols as protocols
    specs, _ = methods.discover()
    for name in get_args(protocols.TeacherMethod):
        assert name in specs and not specs[name].cls.uses_teacher, name
