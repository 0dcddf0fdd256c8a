"""The "will MKE help?" check: the MKE hypothesis on generators, invariances, and bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from mke_theory.cli import cli
from mke_theory.diagnose import check
from mke_theory.generators import gaussian_mixture
from mke_theory.noise import make_pseudo_labels


def _report(beta_informative, seed=0, eta=0.2):
    split = gaussian_mixture(n_unlabeled=2000, alpha_separation=1.0, beta_separation=4.0,
                             beta_informative=beta_informative, random_state=seed)
    y = split.unlabeled_labels
    pseudo = make_pseudo_labels("symmetric", y, eta, n_classes=2, random_state=seed)
    return split, pseudo, check(split.unlabeled_alpha, split.unlabeled_beta, pseudo, y)


@pytest.mark.parametrize("seed", [0, 1])
def test_informative_beta_gives_a_smaller_bound_and_separation(seed):
    _, _, r = _report(True, seed)
    assert r["mm"]["mu"] < 0.3 * r["um"]["mu"]
    assert r["mm"]["bound"] is not None and r["mm"]["bound"] < 0.5 * r["um"]["bound"]
    assert r["mm"]["c"] >= r["um"]["c"] * 0.95  # expansion of the mistake sets is not worse in the MM space
    assert "β" in r["verdict"] and "No sign" not in r["verdict"]


@pytest.mark.parametrize("seed", [0, 1])
def test_beta_independent_of_the_label_does_not_lower_the_bound(seed):
    # Observed: MM bound 2.20 vs UM 2.30 (seed 0); a tolerance of 15 % is what "not below" means here.
    _, _, r = _report(False, seed)
    assert r["mm"]["bound"] >= 0.85 * r["um"]["bound"]
    assert r["mm"]["mu"] >= 0.85 * r["um"]["mu"]
    assert r["verdict"].startswith("No sign")


def test_results_do_not_depend_on_sample_order_or_class_names():
    split, pseudo, r = _report(True)
    y = split.unlabeled_labels
    order = np.random.default_rng(3).permutation(len(y))
    rename = np.array([1, 0])
    r2 = check(split.unlabeled_alpha[order], split.unlabeled_beta[order], rename[pseudo[order]], rename[y[order]])
    for space in ("um", "mm"):
        for key in ("c", "mu", "pseudo_label_error", "bound", "condition_holds"):
            assert r2[space][key] == pytest.approx(r[space][key], rel=1e-9), (space, key)


def test_without_labels_only_robustness_is_reported():
    split, pseudo, _ = _report(True)
    r = check(split.unlabeled_alpha, split.unlabeled_beta, pseudo)
    assert r["um"]["bound"] is None and r["mm"]["mu"] is None
    assert 0 <= r["mm"]["robustness_of_pseudo_labels"] <= 1


def test_bad_input_raises_value_errors_naming_the_problem():
    a = np.zeros((10, 2))
    y = np.repeat([0, 1], 5)
    with pytest.raises(ValueError, match="beta"):
        check(a, np.zeros((9, 1)), y, y)
    with pytest.raises(ValueError, match="NaN"):
        check(np.full((10, 2), np.nan), np.zeros((10, 1)), y, y)
    with pytest.raises(ValueError, match="single class"):
        check(np.random.default_rng(0).normal(size=(10, 2)), np.zeros((10, 1)), y, np.zeros(10, int))
    with pytest.raises(ValueError, match="pseudo_labels"):
        check(a, np.zeros((10, 1)), y[:5], y)


def test_cli_on_an_npz_file_prints_json_with_um_and_mm(tmp_path):
    split, pseudo, _ = _report(True)
    path = tmp_path / "d.npz"
    np.savez(path, alpha=split.unlabeled_alpha, beta=split.unlabeled_beta, labels=split.unlabeled_labels,
             pseudo_labels=pseudo)
    result = CliRunner().invoke(cli, ["check", "--data", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stdout: the JSON; stderr: the old-keys note
    for space in ("um", "mm"):
        assert {"c", "mu", "pseudo_label_error", "bound", "condition_holds"} <= set(report[space])
    screen = CliRunner().invoke(cli, ["check", "--data", str(path)])
    assert screen.exit_code == 0 and "separation μ" in screen.output and "k = 10" in screen.output


@pytest.mark.parametrize("arrays, message", [
    (dict(alpha=np.zeros((5, 1)), beta=np.zeros((5, 1))), "misses the key(s) pseudo_labels"),
    (dict(alpha=np.zeros((5, 1)), beta=np.zeros((4, 1)), pseudo_labels=np.array([0, 1, 0, 1, 0])), "beta"),
    (dict(alpha=np.full((4, 1), np.nan), beta=np.zeros((4, 1)), pseudo_labels=np.array([0, 1, 0, 1])), "NaN"),
    (dict(alpha=np.arange(4.0)[:, None], beta=np.zeros((4, 1)), pseudo_labels=np.array([0, 1, 0, 1]),
          labels=np.zeros(4, int)), "single class"),
])
def test_cli_bad_npz_ends_in_one_sentence(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    done = subprocess.run([sys.executable, "-m", "mke_theory.cli", "check", "--data", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_cli_needs_exactly_one_source(tmp_path):
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1 and "exactly one" in result.output
    generated = CliRunner().invoke(cli, ["check", "--generator", "gaussian", "--json"])
    assert generated.exit_code == 0 and json.loads(generated.output)["n_samples"] == 270


def test_the_worst_case_search_runs_on_the_true_classes_not_the_pseudo_labels():
    """Two true classes, each a path of 6 points (spacing s, edges at distance <= 2r = 1.5 s). By hand, the
    worst set of share <= 1/2 in a path is an end segment of 3: N(V) ∩ C = 4 points, c = 4/3. Had the
    search used the pseudo classes ({0, 1, 2} and the rest), class 1 would hold two components and
    reach the least possible ratio 1."""
    from mke_theory.expansion import embed

    x = np.concatenate([np.arange(6.0), 100 + np.arange(6.0)])[:, None]
    labels = np.repeat([0, 1], 6)
    pseudo = np.where(np.arange(12) < 3, 0, 1)
    spacing = float(np.diff(embed(x)[:2, 0])[0])
    report = check(x, x.copy(), pseudo, labels, radius=0.75 * spacing)
    assert report["um"]["c_search"] == pytest.approx(4 / 3)


def test_zero_rows_are_reported_as_zero_rows_not_as_a_single_class():
    with pytest.raises(ValueError, match="alpha has 0 row"):
        check(np.zeros((0, 2)), np.zeros((0, 1)), np.zeros(0, int), np.zeros(0, int))


@pytest.mark.parametrize("factor", [1e200, 1e-200])
def test_the_check_does_not_depend_on_the_scale_of_the_features(factor):
    split, pseudo, r = _report(True)
    r2 = check(split.unlabeled_alpha * factor, split.unlabeled_beta * factor, pseudo, split.unlabeled_labels)
    for space in ("um", "mm"):
        for key in ("c", "mu", "pseudo_label_error", "condition_holds"):
            assert r2[space][key] == pytest.approx(r[space][key], rel=1e-6), (space, key)
