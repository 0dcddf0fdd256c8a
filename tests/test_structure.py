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

# The layers, bottom up: what each may import of the project (besides itself). A module belongs to the longest
# prefix listed; an import outside its row is a layering error. mke_theory never imports mke_experiments.
THEORY_MATHS = ("mke_theory.objective", "mke_theory.generators", "mke_theory.noise", "mke_theory.expansion",
                "mke_theory.bounds", "mke_theory.diagnose")
LAYERS = {
    "mke_theory.core": ("mke_theory.core",),  # nouns and contracts
    "mke_theory.console": ("mke_theory.core",),  # progress, seeds, threads: what both CLIs share
    **{m: ("mke_theory.core", *THEORY_MATHS) for m in THEORY_MATHS},  # the maths
    "mke_theory.results": ("mke_theory.core", "mke_theory.results"),  # records -> numbers -> pictures
    "mke_theory.toy": ("mke_theory.core", *THEORY_MATHS, "mke_theory.results", "mke_theory.toy"),
    "mke_theory.testing": ("mke_theory",),
    "mke_theory.cli": ("mke_theory",),
    "mke_theory": ("mke_theory.core",),  # the package's own __init__
    "mke_experiments.config": ("mke_theory.core",),
    "mke_experiments.config_files": ("mke_theory.core", "mke_experiments.config"),  # --config FILE.yaml, presets
    "mke_experiments.metrics": ("mke_theory.core",),
    "mke_experiments.data": ("mke_theory.core", "mke_theory.console", "mke_experiments.data"),
    "mke_experiments.perturbations": ("mke_theory.core", "mke_theory.objective"),
    "mke_experiments.models": ("mke_theory.core", "mke_experiments.config", "mke_experiments.perturbations",
                               "mke_experiments.models"),
    "mke_experiments.train": ("mke_theory.core", "mke_theory.objective", "mke_experiments.config",
                              "mke_experiments.perturbations", "mke_experiments.models", "mke_experiments.data.rows",
                              "mke_experiments.train"),
    "mke_experiments.tasks": ("mke_theory.core", "mke_theory.results.reference", "mke_experiments.config",
                              "mke_experiments.metrics", "mke_experiments.data", "mke_experiments.perturbations",
                              "mke_experiments.models", "mke_experiments.testing", "mke_experiments.tasks"),
    "mke_experiments.protocol": ("mke_theory.core", "mke_theory.objective", "mke_theory.console",  # fit_mke's threads
                                 "mke_theory.results",  # the table of mke-exp run (run_table)
                                 "mke_experiments.config", "mke_experiments.metrics", "mke_experiments.models",
                                 "mke_experiments.data.rows", "mke_experiments.train", "mke_experiments.tasks",
                                 "mke_experiments.protocol"),
    "mke_experiments.protocol.sweep": ("mke_theory.core", "mke_theory.results", "mke_theory.diagnose",  # the check
                                       "mke_experiments.config", "mke_experiments.train", "mke_experiments.tasks",
                                       "mke_experiments.protocol"),
    "mke_experiments.testing": ("mke_theory", "mke_experiments.config", "mke_experiments.data",
                                "mke_experiments.tasks", "mke_experiments.testing"),
    "mke_experiments.bench": ("mke_theory.core", "mke_theory.objective", "mke_experiments"),
    "mke_experiments.cli": ("mke_theory", "mke_experiments"),
    "mke_experiments.__main__": ("mke_experiments",),
    "mke_experiments": (),
}

# Layers whose every module imports without torch (nor scikit-learn or hypothesis where said): what
# `mke-exp list`, record validation, the theory's maths, the check and the figures load.
LIGHT = {
    "torch": ("mke_theory.core", "mke_theory.console", "mke_theory.generators", "mke_theory.noise",
              "mke_theory.expansion", "mke_theory.bounds", "mke_theory.diagnose", "mke_theory.results",
              "mke_theory.cli", "mke_experiments.config", "mke_experiments.config_files", "mke_experiments.metrics",
              "mke_experiments.tasks",
              "mke_experiments.cli", "mke_experiments.data.cache", "mke_experiments.data.rows"),
    "sklearn": ("mke_theory.core", "mke_theory.generators", "mke_theory.noise", "mke_experiments.metrics",
                "mke_experiments.tasks"),
    "hypothesis": ("mke_theory.core", "mke_theory.generators", "mke_theory.noise"),
}


def moved_aliases() -> set[str]:
    from mke_theory._moved import MOVED

    return set(MOVED)


def layer_of(module: str) -> str:
    matches = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches, key=len)


def modules_of(prefixes) -> list[str]:
    files = [module_name(p) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    return sorted(m for m in files if m not in moved_aliases()
                  and any(m == p or m.startswith(p + ".") for p in prefixes))


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
    graph, aliases = import_graph(), moved_aliases()
    wrong = {m: sorted(e for e in edges if e.startswith("mke_experiments"))
             for m, edges in graph.items() if m.startswith("mke_theory") and m not in aliases}
    assert not {m: e for m, e in wrong.items() if e}


def test_every_import_follows_the_layers():
    graph, aliases = import_graph(), moved_aliases()
    wrong = []
    for module, edges in sorted(graph.items()):
        if module in aliases or module == "mke_theory._moved":
            continue
        layer = layer_of(module)
        allowed = LAYERS[layer] + (layer,)
        wrong += [f"{module} -> {e}" for e in sorted(edges)  # a package's root (its __version__) is no layer
                  if e not in PACKAGES and not any(e == a or e.startswith(a + ".") for a in allowed)]
    assert not wrong, "imports across the layers:\n" + "\n".join(wrong)


def test_the_layer_check_finds_a_planted_upward_import():
    assert layer_of("mke_theory.core.split") == "mke_theory.core"
    assert layer_of("mke_experiments.train.loop") == "mke_experiments.train"
    allowed = LAYERS["mke_theory.core"] + ("mke_theory.core",)
    assert not any("mke_theory.results.stats".startswith(a + ".") for a in allowed)  # core -> results: refused


@pytest.mark.parametrize("library", sorted(LIGHT))
def test_light_layers_do_not_load(library):
    names = modules_of(LIGHT[library])
    assert len(names) > 5, names  # the layers were found, not an empty list
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            f"    assert {library!r} not in sys.modules, name + ' loaded {library}'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_nothing_in_mke_theory_names_an_experiment_task_or_reads_rows():
    """The theory is task-agnostic: the names of the tasks and the row reader live in mke_experiments."""
    from mke_experiments.tasks import TASKS

    offenders = []
    for path in (ROOT / "mke_theory").rglob("*.py"):
        if path.name == "_moved.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in TASKS:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
            if isinstance(node, ast.Attribute) and node.attr in ("preadv", "pread"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} os.{node.attr}")
    assert not offenders, offenders


def test_loss_forms_and_regularisers_are_declared_once():
    """Before: four lists each, one of which (TwoMoonConfig's) had drifted to another order."""
    from mke_theory.core.methods import LOSS_FORMS, REGULARIZERS

    found = []
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and all(
                        isinstance(e, ast.Constant) for e in node.elts):
                    values = {e.value for e in node.elts}
                    if values in (set(LOSS_FORMS), set(REGULARIZERS)):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == ["mke_theory/core/methods.py:" + found[0].split(":")[1],
                     "mke_theory/core/methods.py:" + found[1].split(":")[1]], found


def test_mke_exp_list_loads_no_torch():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom mke_experiments.cli import cli\n"
            "result = CliRunner().invoke(cli, ['list'])\n"
            "assert result.exit_code == 0 and 'mfeat' in result.output, result.output\n"
            "assert 'torch' not in sys.modules, 'mke-exp list loaded torch'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
