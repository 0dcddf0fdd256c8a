"""From a run to a check (issue 12, 3): every seed of a run with vector inputs writes ``OUT/check/<stem>.npz``
with D_u as the students see it and that seed's teacher output; ``mke-exp check`` trains only the teacher
and checks that bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mke_experiments.cli import cli as exp_cli
from mke_experiments.config import resolve_config
from mke_experiments.protocol import RunFiles, SeedRun, run_seeds, vector_inputs
from mke_experiments.tasks import get_task
from mke_experiments.testing.bundles import write_bundle
from mke_theory import diagnose
from mke_theory.core.errors import MKEError
from mke_theory.core.records import run_stem
from mke_theory.core.split import MultimodalSplit
from mke_theory.generators import gaussian_mixture

CPU = torch.device("cpu")
KEYS = {"unlabeled_alpha", "unlabeled_beta", "pseudo_labels", "teacher_probs", "val_alpha", "val_beta", "val_labels",
        "teacher_val_probs", "unlabeled_labels", "input_noise"}
SPLIT = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
VAL = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=10, n_test=40, random_state=1)
needs_check = pytest.mark.skipif(not hasattr(diagnose, "check_bundle"), reason="mke_theory.diagnose.check_bundle "
                                 "has not landed yet")


def _read(path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def mfeat_run(tmp_path_factory):
    """mfeat, 2 epochs, seeds 0 and 1, teacher and MM student, written to ``out``."""
    task = get_task("mfeat")
    cfg, split = task.load_split(resolve_config(task, (), 2), None, ())
    out = tmp_path_factory.mktemp("runs")
    results = run_seeds(cfg, split, [0, 1], methods=("teacher", "mm_student"), out=out, device=CPU)
    return cfg, split, out, results


def _path(out, seed):
    (path,) = (out / "check").glob(f"mfeat__check__seed{seed}__*.npz")
    return path


def test_run_writes_one_bundle_per_seed_with_the_keys_and_the_students_pseudo_labels(mfeat_run):
    cfg, split, out, results = mfeat_run
    h = results[0].records[0]["config_hash"]
    assert sorted(f.name for f in (out / "check").iterdir()) == [f"{run_stem('mfeat', 'check', s, h)}.npz"
                                                                 for s in (0, 1)]
    for seed, result in zip((0, 1), results):
        bundle = _read(_path(out, seed))
        assert set(bundle) == KEYS
        for key, value in result.check.items():  # what the run returns is what it wrote
            np.testing.assert_array_equal(bundle[key], value)
        assert bundle["pseudo_labels"].dtype == np.int64 and bundle["teacher_probs"].dtype == np.float32
        np.testing.assert_array_equal(bundle["pseudo_labels"], bundle["teacher_probs"].argmax(axis=1))
        np.testing.assert_array_equal(bundle["pseudo_labels"], result.pseudo_labels)  # what the students learned
        np.testing.assert_allclose(bundle["teacher_val_probs"].sum(axis=1), 1.0, atol=1e-5)
        teacher = next(r for r in result.records if r["method"] == "teacher")
        val_accuracy = (bundle["teacher_val_probs"].argmax(axis=1) == bundle["val_labels"]).mean()
        assert val_accuracy == pytest.approx(teacher["metrics"]["val_accuracy"])  # the record's teacher, on val
        assert bundle["input_noise"].ndim == 0 and float(bundle["input_noise"]) == cfg.mke.input_noise


def test_each_seed_has_its_own_teacher(mfeat_run):
    cfg, split, out, _ = mfeat_run
    a, b = (_read(_path(out, s)) for s in (0, 1))
    assert not np.allclose(a["teacher_probs"], b["teacher_probs"])  # not seed 0's teacher written for every seed
    assert not np.allclose(a["teacher_val_probs"], b["teacher_val_probs"])
    np.testing.assert_array_equal(a["unlabeled_alpha"], b["unlabeled_alpha"])  # the same D_u


def test_bundle_holds_d_u_and_val_in_the_splits_order_and_no_test_row(mfeat_run):
    cfg, split, out, _ = mfeat_run
    bundle = _read(_path(out, 0))
    for key in ("unlabeled_alpha", "unlabeled_beta", "unlabeled_labels", "val_alpha", "val_beta", "val_labels"):
        np.testing.assert_array_equal(bundle[key], getattr(split, key))  # standardised, as the students see it
    rows = lambda a, b: {np.concatenate([x, y]).tobytes() for x, y in zip(a, b)}  # noqa: E731 (α, β) pairs
    test = rows(np.asarray(split.test_alpha, np.float32), np.asarray(split.test_beta, np.float32))
    for part in ("unlabeled", "val"):  # canary: val_* are not the test set (a few zer rows alone repeat in mfeat)
        assert not test & rows(bundle[f"{part}_alpha"], bundle[f"{part}_beta"])


def test_resume_rewrites_an_identical_bundle(mfeat_run):
    cfg, split, out, _ = mfeat_run
    path = _path(out, 0)
    before = _read(path)
    path.unlink()
    (again,) = run_seeds(cfg, split, [0], methods=("teacher", "mm_student"), out=out, device=CPU)
    assert [r["method"] for r in again.records] == ["teacher", "mm_student"]
    after = _read(path)  # written again, though every record was finished: the teacher resumed from its checkpoint
    assert set(after) == set(before)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def test_inputs_that_are_not_vectors_get_no_bundle(tmp_path):
    rng = np.random.default_rng(0)
    images = MultimodalSplit(labeled_alpha=rng.normal(size=(6, 3, 4, 4)), labels=np.arange(6) % 2,
                             unlabeled_alpha=rng.normal(size=(8, 3, 4, 4)), unlabeled_beta=rng.normal(size=(8, 5)),
                             test_alpha=rng.normal(size=(4, 3, 4, 4)), test_beta=rng.normal(size=(4, 5)),
                             test_labels=np.arange(4) % 2, n_classes=2)
    assert not vector_inputs(images) and vector_inputs(SPLIT)
    cfg = resolve_config(get_task("arrays"), (), 1)
    run = SeedRun(cfg, images, 0, RunFiles(tmp_path, "arrays", 0, "h", images.split_id), CPU)
    assert run.check(object(), None) is None  # returns before it touches the teacher
    assert not (tmp_path / "check").exists()


def _bundle(tmp_path, **changes):
    val = dict(val_alpha=VAL.test_alpha, val_beta=VAL.test_beta, val_labels=VAL.test_labels)
    return write_bundle(tmp_path / "bundle.npz", SPLIT, **{**val, **changes})


def _load(path, overrides=()):
    task = get_task("arrays")
    return task.load_split(resolve_config(task, overrides, 2), path, overrides)


def test_the_bundles_own_teacher_output_on_val_is_kept_and_passed_through(tmp_path):
    rng = np.random.default_rng(0)
    probs, val_probs = rng.dirichlet(np.ones(3), size=120), rng.dirichlet(np.ones(3), size=40)
    cfg, split = _load(_bundle(tmp_path, teacher_probs=probs, teacher_val_probs=val_probs))
    np.testing.assert_allclose(split.meta["teacher_output"]["teacher_val_probs"], val_probs, rtol=1e-5)
    (result,) = run_seeds(cfg, split, [0], methods=("teacher", "mm_student"), out=tmp_path / "runs", device=CPU)
    (path,) = (tmp_path / "runs" / "check").glob("*.npz")
    bundle = _read(path)
    assert set(bundle) == KEYS
    np.testing.assert_allclose(bundle["teacher_probs"], probs, rtol=1e-5)
    np.testing.assert_allclose(bundle["teacher_val_probs"], val_probs, rtol=1e-5)
    np.testing.assert_array_equal(bundle["pseudo_labels"], probs.argmax(axis=1))

    cfg, split = _load(_bundle(tmp_path, pseudo_labels=SPLIT.unlabeled_labels, teacher_val_pred=VAL.test_labels))
    (result,) = run_seeds(cfg, split, [0], methods=("mm_student",), device=CPU)
    assert "teacher_probs" not in result.check
    np.testing.assert_array_equal(result.check["teacher_val_pred"], VAL.test_labels)


@pytest.mark.parametrize("changes, words", [
    (dict(teacher_probs=np.full((120, 3), 1 / 3), teacher_val_probs=np.full((40, 2), 0.5)),
     ("teacher_val_probs", "(n, 3)")),
    (dict(teacher_probs=np.full((120, 3), 1 / 3), teacher_val_probs=np.full((39, 3), 1 / 3)),
     ("teacher_val_probs has 39 rows", "val_alpha has 40")),
    (dict(teacher_probs=np.full((120, 3), 1 / 3), teacher_val_probs=np.full((40, 3), 0.5)),
     ("row 0 of teacher_val_probs", "not 1")),
    (dict(pseudo_labels=SPLIT.unlabeled_labels, teacher_val_pred=VAL.test_labels[:10]),
     ("teacher_val_pred has 10 rows",)),
    (dict(pseudo_labels=SPLIT.unlabeled_labels, teacher_val_pred=VAL.test_labels,
          teacher_val_probs=np.eye(3)[VAL.test_labels]),
     ("one of teacher_val_pred", "not both")),
    (dict(teacher_val_probs=np.full((40, 3), 1 / 3)), ("teacher_val_probs need(s) the teacher's output on D_u",)),
    (dict(pseudo_labels=SPLIT.unlabeled_labels, teacher_val_pred=VAL.test_labels, val_alpha=None, val_beta=None,
          val_labels=None), ("teacher_val_pred is the teacher's output on the validation set", "no val_alpha")),
])
def test_bad_teacher_output_on_val_is_named(tmp_path, changes, words):
    with pytest.raises(MKEError) as e:
        _load(_bundle(tmp_path, **changes))
    assert all(w in str(e.value) for w in words), str(e.value)
    assert str(e.value).count(". ") == 0  # one sentence


def test_check_cli_refuses_inputs_that_are_not_vectors(tmp_path):
    rng = np.random.default_rng(0)
    path = write_bundle(tmp_path / "bundle.npz", SPLIT, labeled_alpha=rng.normal(size=(30, 2, 2)),
                        unlabeled_alpha=rng.normal(size=(120, 2, 2)), test_alpha=rng.normal(size=(60, 2, 2)))
    result = CliRunner().invoke(exp_cli, ["check", "arrays", "--data", str(path)])
    assert result.exit_code != 0
    assert "mke-exp check needs vector features (mfeat, arrays); arrays's inputs are arrays of shape (2, 2)" in \
        result.output


@needs_check
def test_check_cli_trains_the_teacher_and_reports_as_json(tmp_path):
    result = CliRunner().invoke(exp_cli, ["check", "mfeat", "--epochs", "2", "--max-samples", "500", "--json",
                                          "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "check on 500 of 1100 samples of D_u, drawn at random (seed 0)" in result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] in ("helps", "unclear", "hurts")
    assert {"estimate", "low", "high"} <= set(report["predicted_gain"])
    assert {"um", "mm"} <= set(report)
    assert not (tmp_path / "check").exists()


@needs_check
def test_check_cli_with_the_bundles_teacher_trains_nothing_and_writes_with_out(tmp_path):
    path = _bundle(tmp_path, pseudo_labels=SPLIT.unlabeled_labels)
    out = tmp_path / "runs"
    result = CliRunner().invoke(exp_cli, ["check", "arrays", "--data", str(path), "--out", str(out), "--seed", "3",
                                          "--json"])
    assert result.exit_code == 0, result.output
    assert "check on all 120 samples of D_u; the teacher's output from the bundle" in result.stderr
    (bundle,) = (out / "check").glob("*__check__seed3__*.npz")
    np.testing.assert_array_equal(_read(bundle)["pseudo_labels"], SPLIT.unlabeled_labels)
    assert list((out / "checkpoints").iterdir()) == []  # no teacher trained


@needs_check
def test_check_cli_with_out_writes_the_teacher_record_and_the_bundle(tmp_path):
    out = tmp_path / "runs"
    result = CliRunner().invoke(exp_cli, ["check", "arrays", "--data", str(_bundle(tmp_path)), "--out", str(out),
                                          "--epochs", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert [p.name.split("__")[1] for p in out.glob("*.json")] == ["teacher"]
    (bundle,) = (out / "check").glob("*.npz")
    assert set(_read(bundle)) == KEYS


# ---- issue 23, 8: mke-theory check refuses inconsistent bundles ------------------------------------------------


def _check_arrays(n=120, **changes):
    """A check bundle: D_u of ``n`` rows of SPLIT with the teacher's probabilities, VAL's 40 test rows as the
    labeled validation data with the teacher's probabilities on them (80 % right)."""
    wrong = np.arange(40) % 5 == 0
    arrays = dict(unlabeled_alpha=SPLIT.unlabeled_alpha[:n], unlabeled_beta=SPLIT.unlabeled_beta[:n],
                  teacher_probs=np.eye(3)[SPLIT.unlabeled_labels[:n]] * 0.7 + 0.1, val_alpha=VAL.test_alpha,
                  val_beta=VAL.test_beta, val_labels=VAL.test_labels,
                  teacher_val_probs=np.eye(3)[np.where(wrong, (VAL.test_labels + 1) % 3, VAL.test_labels)] * 0.7 + 0.1)
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def _same(a, b):
    return {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}


@needs_check
def test_d_u_needs_twice_the_probes_neighbours():
    assert diagnose.MIN_UNLABELED == 2 * diagnose.PROBE_K == 40
    with pytest.raises(MKEError, match=r"D_u \(unlabeled_alpha\) has 39 row\(s\); the check needs at least 40"):
        diagnose.check_bundle(_check_arrays(n=39))
    assert diagnose.check_bundle(_check_arrays(n=40))["n_used"] == 40
    with pytest.raises(MKEError, match=r"has 120 row\(s\) \(max_samples keeps 10 of 120\)"):
        diagnose.check_bundle(_check_arrays(), max_samples=10)
    with pytest.raises(MKEError, match="at least 40"):  # without validation data too: no report on 2 rows
        diagnose.check_bundle(_check_arrays(n=2, val_alpha=None, val_beta=None, val_labels=None,
                                            teacher_val_probs=None))


@needs_check
def test_probability_columns_follow_the_sorted_label_values():
    # integer labels 1 … 3 and class names: column j is the j-th sorted value, as the run reads teacher_probs
    # (the old check compared argmax indices 0 … 2 with labels 1 … 3, or refused strings beside them)
    base = diagnose.check_bundle(_check_arrays())
    assert diagnose.check_bundle(_check_arrays(val_labels=VAL.test_labels + 1))["accuracy"] == base["accuracy"]
    names = np.array(["cat", "cow", "dog"])[VAL.test_labels]
    assert _same(diagnose.check_bundle(_check_arrays(val_labels=names)), base)
    assert base["accuracy"]["teacher"] == pytest.approx(0.8)


@needs_check
@pytest.mark.parametrize("changes, words", [
    (dict(teacher_val_probs=np.full((40, 2), 0.5)), "teacher_val_probs has 2 columns but teacher_probs 3"),
    (dict(teacher_probs=None, pseudo_labels=np.array(["cat", "cow", "dog"])[SPLIT.unlabeled_labels],
          teacher_val_probs=np.full((40, 4), 0.25), val_labels=np.array(["cat", "cow", "dog"])[VAL.test_labels]),
     "the labels hold 3 classes ('cat', 'cow', 'dog') but the teacher's probabilities have 4 columns"),
    (dict(pseudo_labels=np.where(np.arange(120) < 3, 7, SPLIT.unlabeled_labels)),
     "pseudo_labels hold(s) the value(s) 7, not class(es) of val_labels (0, 1, 2)"),
    (dict(teacher_probs=None, teacher_val_probs=None, pseudo_labels=SPLIT.unlabeled_labels,
          teacher_val_pred=np.where(np.arange(40) < 1, 3, VAL.test_labels)),
     "teacher_val_pred hold(s) the value(s) 3, not class(es) of val_labels"),
    (dict(pseudo_labels=(SPLIT.unlabeled_labels + 1) % 3), "pseudo_labels disagree with teacher_probs in 120 of 120"),
    (dict(teacher_val_pred=(VAL.test_labels + 1) % 3), "teacher_val_pred disagree with teacher_val_probs in 32 of 40"),
    (dict(input_noise=np.array([0.1, 0.5])), "input_noise must be a scalar"),
    (dict(input_noise=np.array(-1.0)), "input_noise must be a finite number >= 0, got -1.0"),
    (dict(teacher_val_prob=np.full((40, 3), 1 / 3)), "teacher_val_prob (did you mean teacher_val_probs?)"),
])
def test_inconsistent_check_bundles_are_one_sentence(changes, words):
    with pytest.raises(MKEError) as e:
        diagnose.check_bundle(_check_arrays(**changes), source="b.npz")
    assert words in str(e.value) and str(e.value).startswith("b.npz")
    assert ". " not in str(e.value)


@needs_check
def test_pseudo_labels_beside_probabilities_may_break_ties_and_are_the_ones_used():
    probs = np.full((120, 3), 1 / 3)  # every row a tie: any class is an argmax
    pseudo = SPLIT.unlabeled_labels
    given = diagnose.check_bundle(_check_arrays(teacher_probs=probs, pseudo_labels=pseudo))
    assert _same(given, diagnose.check_bundle(_check_arrays(teacher_probs=None, pseudo_labels=pseudo)))
    one = diagnose.check_bundle(_check_arrays(input_noise=np.array([0.3])))
    assert _same(one, diagnose.check_bundle(_check_arrays(), input_noise=0.3))  # a 1-element array is a scalar
