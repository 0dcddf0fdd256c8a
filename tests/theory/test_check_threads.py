"""``mke-theory check`` runs its small matrices on one BLAS / OpenMP thread (issue 24 point 8: thread pools spinning
against each other took 3 to 5 times the CPU on two cores). The limit must not change a printed number: the command
line's JSON equals ``check_bundle`` run in this process with the thread pools as they are."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from mke_theory.cli import cli
from mke_theory.diagnose import check_bundle
from mke_theory.generators import gaussian_mixture
from mke_theory.results.tables import json_safe


def test_the_thread_limit_changes_no_number(tmp_path):
    # 40 + 30 features: the kNN distances and the class graphs' eigh go through BLAS
    s = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=300, n_test=150, alpha_dim=40, beta_dim=30,
                         random_state=0)
    rng = np.random.default_rng(0)
    wrong = lambda y: np.where(rng.random(len(y)) < 0.2, (y + 1) % 3, y)  # noqa: E731
    bundle = dict(unlabeled_alpha=s.unlabeled_alpha, unlabeled_beta=s.unlabeled_beta,
                  pseudo_labels=wrong(s.unlabeled_labels), val_alpha=s.test_alpha, val_beta=s.test_beta,
                  val_labels=s.test_labels, teacher_val_pred=wrong(s.test_labels), input_noise=np.float64(1.0))
    path = tmp_path / "bundle.npz"
    np.savez(path, **bundle)
    result = CliRunner().invoke(cli, ["check", "--data", str(path), "--json"])
    assert result.exit_code == 0, result.output
    limited = json.loads(result.stdout)
    free = json.loads(json.dumps(json_safe(check_bundle(dict(np.load(path)), source=str(path), max_samples=5000))))
    limited.pop("seconds"), free.pop("seconds")
    assert limited == free
    assert limited["um"]["c_upper"] is not None and limited["mm"]["mean_neighbours"] > 1  # the graphs have edges
