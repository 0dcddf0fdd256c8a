"""No silent fallback in ``mke-exp run``: each one is one line on stderr, and the caption tells the truth."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mke_experiments.cli import cli
from mke_experiments.testing.bundles import write_bundle

RUN = ("--epochs", "1", "--device", "cpu")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def no_val_no_truth(tmp_path_factory):
    """A bundle without val_* (train.selection=val cannot select) and without unlabeled_labels
    (mm_supervised, the upper bound, has nothing to train on)."""
    return write_bundle(tmp_path_factory.mktemp("fallbacks") / "bundle.npz", unlabeled_labels=None)


@pytest.fixture(scope="module")
def fallback_run(no_val_no_truth):
    return invoke("run", "arrays", "--data", no_val_no_truth, *RUN, "--seeds", "0,",
                  "--methods", "teacher,mm_student,mm_supervised", "--set", "train.selection=val")


def test_no_validation_set_is_said_in_one_line_and_in_the_caption(fallback_run):
    result = fallback_run
    assert result.exit_code == 0, result.output
    said = [line for line in result.stderr.splitlines() if "validation set" in line]
    assert len(said) == 1 and "last epoch" in said[0], result.stderr
    caption = [line for line in result.stdout.splitlines() if "model selection" in line]
    assert len(caption) == 1 and "model selection: last (no validation set)" in caption[0], result.stdout
    assert "model selection: val" not in result.stdout


def test_skipped_upper_bound_is_one_readable_line_not_a_warning_dump(fallback_run):
    result = fallback_run
    skipped = [line for line in result.output.splitlines() if "mm_supervised" in line and "skipped" in line]
    assert skipped == ["WARNING: mm_supervised is skipped: the split has no unlabeled_labels (the true labels "
                       "of D_u) to train it on."], result.output
    assert "SkippedMethodWarning" not in result.output and "warnings.warn" not in result.output
    assert "mm_supervised" not in result.stdout  # no row for a method that was not trained


def test_with_a_validation_set_nothing_is_said(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    bundle = write_bundle(tmp_path / "val.npz", val_alpha=rng.normal(size=(20, 2)), val_beta=rng.normal(size=(20, 2)),
                          val_labels=np.arange(20) % 3)
    result = invoke("run", "arrays", "--data", bundle, *RUN, "--seeds", "0,", "--methods", "teacher")
    assert result.exit_code == 0, result.output
    assert "validation set" not in result.stderr and "WARNING" not in result.stderr
    assert "model selection: val" in result.stdout


# ---- --seeds: the same rule as mke-theory ----------------------------------------------------------------


def _seeds(out):
    return sorted(json.loads(p.read_text())["seed"] for p in out.glob("*.json"))


def test_bare_seed_is_that_seed_and_says_so(no_val_no_truth, tmp_path):
    # `mke-exp run mfeat --seeds 3` used to train seed 3 alone without a word
    result = invoke("run", "arrays", "--data", no_val_no_truth, *RUN, "--seeds", "3", "--methods", "teacher",
                    "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert "training seed 3 only" in result.stderr and "--n-seeds 3" in result.stderr
    assert _seeds(tmp_path / "a") == [3]


def test_n_seeds_is_the_first_n_and_both_is_an_error(no_val_no_truth, tmp_path):
    result = invoke("run", "arrays", "--data", no_val_no_truth, *RUN, "--n-seeds", "2", "--methods", "teacher",
                    "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert "training seed" not in result.stderr
    assert _seeds(tmp_path / "b") == [0, 1]
    both = invoke("run", "arrays", "--data", no_val_no_truth, *RUN, "--n-seeds", "2", "--seeds", "0,1")
    assert both.exit_code == 1 and "not both" in both.output, both.output


def test_run_prints_progress_lines_into_a_log(no_val_no_truth, monkeypatch):
    import mke_theory.console as console

    monkeypatch.setattr(console, "PROGRESS_INTERVAL_S", 0.0)
    result = invoke("run", "arrays", "--data", no_val_no_truth, "--epochs", "5", "--device", "cpu", "--n-seeds", "2",
                    "--methods", "teacher")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("arrays: 2 seeds × 1 method: ")]
    assert len(lines) >= 2 and "steps/s" in lines[0] and "/" in lines[0], result.stderr
    assert "done in" in lines[-1], result.stderr


def test_the_python_api_warns_each_fallback_once(no_val_no_truth):
    """fit_mke / run_split callers see the same two fallbacks the CLI prints, as one warning each."""
    import warnings

    import numpy as np

    from mke_experiments.config import resolve_config
    from mke_experiments.protocol import FallbackWarning, fit_mke
    from mke_experiments.tasks import get_task

    cfg = resolve_config(get_task("arrays"), ["train.epochs=1", "train.selection=val"], None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_mke(dict(np.load(no_val_no_truth)), cfg, device="cpu", methods=("teacher", "mm_student", "mm_supervised"))
    said = [str(w.message) for w in caught if issubclass(w.category, FallbackWarning)]
    assert len(said) == 2 and any("last epoch" in s for s in said)
    assert any("mm_supervised is skipped" in s for s in said)
