"""The modules that moved when the packages were cut by layer keep their old names for one release.

``mke_theory._moved.MOVED`` lists them; each old name loads the new module (the same object, so a monkeypatch or
an ``isinstance`` through either name sees one thing) and says where it went with a ``DeprecationWarning``.
A model file saved before the move (``tests/data/predictor_before_house_plan.pt``: ``fit_mke``'s MM student on
``gaussian_mixture(random_state=0)``, saved by commit 57c6f63, format 1) is refused by ``Predictor.load`` and, once
converted (``convert_legacy``), predicts what it predicted then.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mke_theory._moved import MOVED

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_name_is_the_new_module_and_warns(old):
    new = MOVED[old]
    code = ("import importlib, sys, warnings\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            f"    module = importlib.import_module({old!r})\n"
            f"assert module is sys.modules[{new!r}], module\n"
            f"assert sys.modules[{old!r}] is module\n"
            "moved = [w for w in caught if issubclass(w.category, DeprecationWarning) and "
            f"{old!r} in str(w.message) and {new!r} in str(w.message)]\n"
            "assert len(moved) == 1, [str(w.message) for w in caught]\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_names_the_docs_showed_are_still_importable_from_their_old_modules():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from mke_experiments.pipeline import check_arrays, fit_mke  # noqa: F401
        from mke_theory.npz import KEYS  # noqa: F401
        from mke_theory.records import read_records  # noqa: F401
        from mke_theory.rows import NpyFile  # noqa: F401
        from mke_theory.tables import format_table  # noqa: F401
        from mke_theory.twomoon import TwoMoonConfig  # noqa: F401


def test_the_project_itself_never_imports_an_old_name():
    """The aliases are for users' code; ours imports the new modules (a test that missed one would pass by luck)."""
    import ast

    offenders = []
    for folder in ("mke_theory", "mke_experiments", "tests", "benchmarks", "paper_figures"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "test_moved.py" or ".".join(path.relative_to(ROOT).with_suffix("").parts) in MOVED:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                         if isinstance(node, ast.ImportFrom) and node.module else [])
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n in MOVED]
    assert not offenders, offenders


def test_a_predictor_saved_before_the_move_is_refused_and_converts_to_what_it_predicted_then(tmp_path):
    """Format 1 (a pickled network) is never opened by ``Predictor.load`` (it could run code); ``convert_legacy``, for
    files one trusts (this one is ours), gives a format-2 file that predicts bit for bit what it predicted then."""
    from mke_experiments.protocol.predictor import Predictor, convert_legacy
    from mke_theory.core.errors import MKEError

    expected = np.load(DATA / "predictor_before_house_plan.npz")
    with pytest.raises(MKEError, match="convert_legacy"):
        Predictor.load(DATA / "predictor_before_house_plan.pt")
    convert_legacy(DATA / "predictor_before_house_plan.pt", tmp_path / "converted.pt")
    predictor = Predictor.load(tmp_path / "converted.pt")
    assert predictor.info["method"] == "mm_student" and predictor.modalities == 2
    probs = predictor.predict_proba(expected["alpha"], expected["beta"])
    np.testing.assert_array_equal(probs, expected["probs"])  # bit for bit: the same network, the same arithmetic
    assert probs.shape == (20, 2) and not np.allclose(probs, 0.5)  # a trained network, not a blank one
