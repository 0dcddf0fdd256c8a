"""`make test-fast` leaves out the tests that tests/conftest.py marks integration; `make test` (CI) runs them all."""

import ast
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _conftest():
    spec = importlib.util.spec_from_file_location("tests_conftest", ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_integration_entry_names_a_test_that_exists():
    """A renamed or moved test would otherwise fall silently into the fast subset."""
    missing = []
    for entry in sorted(_conftest().INTEGRATION):
        path, _, name = entry.partition("::")
        if not (ROOT / path).is_file():
            missing.append(entry)
            continue
        tree = ast.parse((ROOT / path).read_text())
        if name and name not in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}:
            missing.append(entry)
    assert not missing, f"tests/conftest.py INTEGRATION names tests that are not there: {missing}"


def test_make_test_runs_the_integration_tests_and_test_fast_does_not():
    addopts = re.search(r'^addopts = "(.*)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert "integration" not in addopts  # CI's `make test` is plain `pytest -q`
    makefile = (ROOT / "Makefile").read_text()
    fast = re.search(r"^test-fast:.*\n\t(.*)$", makefile, re.M).group(1)
    assert "-m 'not slow and not gpu and not integration'" in fast
    assert re.search(r"^test:.*\n\t\$\(BIN\)/python -m pytest -q$", makefile, re.M)
