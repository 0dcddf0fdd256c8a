"""The shape of the packages: no import cycle, one-way layering, light modules stay light.

Every import counts, at module level or inside a function: a lazy import still ties two modules
together, and a cycle hidden in a function is the kind that makes ``mke-exp list`` load torch.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mke_theory", "mke_experiments")

# Modules that must import without torch (nor scikit-learn or hypothesis where they are not needed):
# what `mke-exp list`, record validation, the theory and the figures load.
LIGHT = {
    "torch": ["mke_theory", "mke_theory.core.split", "mke_theory.core.errors", "mke_theory.core.methods", "mke_theory.core.records",
              "mke_theory.generators", "mke_theory.noise", "mke_theory.results.stats", "mke_theory.expansion",
              "mke_theory.bounds", "mke_theory.diagnose", "mke_theory.cli", "mke_theory.results.plots", "mke_theory.results.tables",
              "mke_theory.results.palette", "mke_theory.results.reference",
              "mke_experiments.config", "mke_experiments.metrics", "mke_experiments.tasks", "mke_experiments.cli"],
    "sklearn": ["mke_theory", "mke_theory.generators", "mke_theory.noise", "mke_experiments.metrics",
                "mke_experiments.tasks"],
    "hypothesis": ["mke_theory", "mke_theory.core.split", "mke_theory.generators", "mke_theory.noise"],
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> project modules it imports anywhere in its body (``from pkg import sub`` names ``pkg.sub``)."""
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in files else node.module
                           for alias in node.names]
            else:
                continue
            edges |= {t for t in targets if t in files and t != name}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_either_package():
    found = cycles(import_graph())
    assert not found, f"import cycles: {found}"


def test_mke_theory_never_imports_mke_experiments():
    graph = import_graph()
    wrong = {m: sorted(e for e in edges if e.startswith("mke_experiments"))
             for m, edges in graph.items() if m.startswith("mke_theory")}
    assert not {m: e for m, e in wrong.items() if e}


@pytest.mark.parametrize("library", sorted(LIGHT))
def test_light_modules_do_not_load(library):
    code = ("import importlib, sys\n"
            f"for name in {LIGHT[library]!r}:\n"
            "    importlib.import_module(name)\n"
            f"    assert {library!r} not in sys.modules, name + ' loaded {library}'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_mke_exp_list_loads_no_torch():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom mke_experiments.cli import cli\n"
            "result = CliRunner().invoke(cli, ['list'])\n"
            "assert result.exit_code == 0 and 'mfeat' in result.output, result.output\n"
            "assert 'torch' not in sys.modules, 'mke-exp list loaded torch'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
