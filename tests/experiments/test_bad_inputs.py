"""A table of bad inputs for both CLIs: each ends in exit 1 or 2 with one message naming the file, key
or option, never a traceback (exit 70), and leaves every file that existed before unchanged."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mke_experiments.cli import cli as exp_cli
from mke_experiments.tasks.arrays import ArraysData, split_from_arrays, standardize
from mke_experiments.testing.bundles import write_bundle
from mke_theory.cli import cli as theory_cli
from mke_theory.generators import gaussian_mixture

RUN = ("--epochs", "1", "--seeds", "0", "--device", "cpu", "--methods", "teacher")


def _savez(path, **arrays):
    np.savez(path, **arrays)
    return path


def _truncated(path, good):
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _check_bundle(path, n=20, **changes):
    rng = np.random.default_rng(0)
    arrays = dict(alpha=rng.normal(size=(n, 2)), beta=rng.normal(size=(n, 1)), pseudo_labels=np.arange(n) % 2,
                  val_alpha=rng.normal(size=(n, 2)), val_beta=rng.normal(size=(n, 1)), val_labels=np.arange(n) % 2)
    arrays.update(changes)
    return _savez(path, **{k: v for k, v in arrays.items() if v is not None})


def _bundle(path, **changes):
    return write_bundle(path, **changes)


def _make_files(tmp):
    """Every input file of the table, in ``tmp``; returns name -> path."""
    good = write_bundle(tmp / "good.npz")
    f = dict(good=good)
    # ---- broken npz files
    f["truncated"] = _truncated(tmp / "truncated.npz", good)
    f["empty"] = tmp / "empty.npz"
    f["empty"].write_bytes(b"")
    np.save(tmp / "single.npy", np.ones((3, 2)))
    f["npy_as_npz"] = tmp / "single_as.npz"
    f["npy_as_npz"].write_bytes((tmp / "single.npy").read_bytes())
    f["text_as_npz"] = tmp / "text.npz"
    f["text_as_npz"].write_text("alpha,beta\n1,2\n")
    f["object_npz"] = _savez(tmp / "object.npz", labeled_alpha=np.array([{"a": 1}], dtype=object))
    f["bad_member"] = tmp / "bad_member.npz"
    with zipfile.ZipFile(f["bad_member"], "w") as z:
        z.writestr("labels.npy", b"not an npy header at all")
    f["folder"] = tmp / "a_folder.npz"
    f["folder"].mkdir()
    # ---- bundles of the arrays task with wrong contents
    split = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
    f["missing_key"] = _bundle(tmp / "missing_key.npz", test_labels=None)
    f["string_labels"] = _bundle(tmp / "string_labels.npz", labels=np.array(["cat", "dog", "cow"] * 10))
    f["float_labels"] = _bundle(tmp / "float_labels.npz", labels=split.labels + 0.5)
    f["nan_labels"] = _bundle(tmp / "nan_labels.npz", labels=np.full(30, np.nan))
    f["inf_labels"] = _bundle(tmp / "inf_labels.npz", labels=np.full(30, np.inf))
    f["negative_labels"] = _bundle(tmp / "negative_labels.npz", labels=split.labels - 1)
    f["labels_2d"] = _bundle(tmp / "labels_2d.npz", labels=split.labels[:, None])
    f["bool_labels"] = _bundle(tmp / "bool_labels.npz", labels=split.labels > 0)
    f["test_class_unseen"] = _bundle(tmp / "unseen.npz", test_labels=np.full(60, 7))
    f["complex"] = _bundle(tmp / "complex.npz", labeled_alpha=split.labeled_alpha * (1 + 1j))
    f["nan_feature"] = _bundle(tmp / "nan_feature.npz", test_beta=np.full_like(split.test_beta, np.nan))
    f["inf_feature"] = _bundle(tmp / "inf_feature.npz", unlabeled_beta=np.full_like(split.unlabeled_beta, np.inf))
    f["string_feature"] = _bundle(tmp / "string_feature.npz", test_alpha=np.array(["x"] * 60))
    f["zero_rows"] = _bundle(tmp / "zero_rows.npz", labeled_alpha=np.zeros((0, 2)), labels=np.zeros(0, int))
    f["zero_rows_test"] = _bundle(tmp / "zero_rows_test.npz", test_alpha=np.zeros((0, 2)),
                                  test_beta=np.zeros((0, 2)), test_labels=np.zeros(0, int))
    f["scalar"] = _bundle(tmp / "scalar.npz", unlabeled_alpha=np.float64(3.0))
    f["rows_mismatch"] = _bundle(tmp / "rows_mismatch.npz", labels=split.labels[:-1])
    f["beta_rows"] = _bundle(tmp / "beta_rows.npz", unlabeled_beta=split.unlabeled_beta[:-5])
    f["width_mismatch"] = _bundle(tmp / "width.npz", test_alpha=np.zeros((60, 5)))
    f["test_overflow"] = _bundle(tmp / "overflow.npz", test_alpha=np.full_like(split.test_alpha, 1e308),
                                 labeled_alpha=split.labeled_alpha * 1e-300,
                                 unlabeled_alpha=split.unlabeled_alpha * 1e-300)
    # ---- bundles with the teacher's output (your own teacher) and labels to encode
    m, n_test = len(split.unlabeled_labels), len(split.test_labels)
    probs = np.full((m, 3), 1 / 3)
    f["ext_probs_sum"] = _bundle(tmp / "ext_probs_sum.npz", teacher_probs=probs * 2)
    f["ext_probs_cols"] = _bundle(tmp / "ext_probs_cols.npz", teacher_probs=np.full((m, 5), 0.2))
    f["ext_probs_nan"] = _bundle(tmp / "ext_probs_nan.npz", teacher_probs=np.full((m, 3), np.nan))
    f["ext_pseudo_rows"] = _bundle(tmp / "ext_pseudo_rows.npz", pseudo_labels=split.unlabeled_labels[:-1])
    f["ext_pseudo_strings"] = _bundle(tmp / "ext_pseudo_str.npz", pseudo_labels=np.array(["a"] * m))
    f["ext_test_rows"] = _bundle(tmp / "ext_test_rows.npz", pseudo_labels=split.unlabeled_labels,
                                 teacher_test_pred=split.test_labels[:5])
    f["ext_test_probs_shape"] = _bundle(tmp / "ext_test_probs.npz", pseudo_labels=split.unlabeled_labels,
                                        teacher_test_probs=np.full((n_test, 2), 0.5))
    f["ext_both"] = _bundle(tmp / "ext_both.npz", pseudo_labels=split.unlabeled_labels, teacher_probs=probs)
    f["ext_test_only"] = _bundle(tmp / "ext_test_only.npz", teacher_test_pred=split.test_labels)
    f["ext_half_dl"] = _bundle(tmp / "ext_half_dl.npz", pseudo_labels=split.unlabeled_labels, labels=None)
    f["label_gap"] = _bundle(tmp / "label_gap.npz", labels=split.labels * 2, test_labels=split.test_labels * 2,
                             unlabeled_labels=split.unlabeled_labels * 2)
    f["single_class"] = _bundle(tmp / "single_class.npz", labels=np.zeros(30, int), test_labels=np.zeros(60, int),
                                unlabeled_labels=np.zeros(m, int))
    f["check_run_probs_1d"] = _bundle(tmp / "check_run_probs_1d.npz", teacher_probs=np.full(m, 0.5))
    f["check_run_probs_sum"] = _bundle(tmp / "check_run_probs_sum.npz", teacher_probs=probs * 2)
    f["check_run_no_u"] = _savez(tmp / "check_run_no_u.npz", unlabeled_alpha=split.unlabeled_alpha,
                                 pseudo_labels=split.unlabeled_labels)
    # ---- npz files for mke-theory check --data
    f["check_missing"] = _check_bundle(tmp / "check_missing.npz", pseudo_labels=None)
    f["check_zero_rows"] = _check_bundle(tmp / "check_zero.npz", n=0)
    f["check_complex"] = _check_bundle(tmp / "check_complex.npz", alpha=np.ones((20, 2)) * 1j)
    f["check_string_labels"] = _check_bundle(tmp / "check_str.npz", val_labels=np.array(["a", "b"] * 10))
    f["check_string_pseudo"] = _check_bundle(tmp / "check_strp.npz", pseudo_labels=np.array(["a", "b"] * 10))
    f["check_string_alpha"] = _check_bundle(tmp / "check_stra.npz", alpha=np.array(["a", "b"] * 10))
    f["check_nan"] = _check_bundle(tmp / "check_nan.npz", beta=np.full((20, 1), np.nan))
    f["check_rows"] = _check_bundle(tmp / "check_rows.npz", beta=np.zeros((19, 1)))
    f["check_single_class"] = _check_bundle(tmp / "check_single.npz", val_labels=np.zeros(20, int))
    f["check_truncated"] = _truncated(tmp / "check_truncated.npz", _check_bundle(tmp / "check_ok.npz"))

    def folder(name: str, contents: dict | None = None):
        """``tmp/name`` holding ``contents`` (file name -> str or bytes)."""
        path = tmp / name
        path.mkdir()
        for file, data in (contents or {}).items():
            (path / file).write_bytes(data if isinstance(data, bytes) else data.encode())
        return path

    nan_record = dict(schema_version=1, task="arrays", method="teacher", seed=0,
                      metrics=dict(test_accuracy=float("nan")), config={}, wall_time_s=1.0, version="0.1.0")
    f.update(  # ---- csv files for prepare vggsound
        latin_raw=folder("latin_raw", {"vggsound.csv": "abcdefghijk,0,caf\xe9 noise,train\n".encode("latin-1")}),
        twice_raw=folder("twice_raw", {"vggsound.csv": "abcdefghijk,0,dog barking,train\n"
                                                        "abcdefghijk,0,dog barking,test\n"}),
        header_raw=folder("header_raw", {"vggsound.csv": "YouTube ID,start seconds,label,split\n"
                                                          "abcdefghijk,0,dog barking,train\n"}),
        no_csv_raw=folder("no_csv_raw"),
        ravdess_empty=folder("ravdess_empty"),
        # ---- record folders for mke-exp report
        runs_corrupt=folder("runs_corrupt", {"arrays__teacher__seed0.json": '{"task": "arrays", "method": '}),
        runs_nan=folder("runs_nan", {"arrays__teacher__seed0.json": json.dumps(
            dict(task="arrays", method="teacher", seed=0, metrics=dict(test_accuracy=float("nan"))))}),
        runs_nan_metric=folder("runs_nan_metric", {"r.json": json.dumps(nan_record)}),  # json writes a bare NaN
        out_ckpt_file=folder("out_with_checkpoints_file", {"checkpoints": "not a folder"}),
        runs_list=folder("runs_list", {"r.json": "[1, 2, 3]"}),
        runs_empty=folder("runs_empty"),
    )
    f["a_file"] = tmp / "a_file.txt"
    f["a_file"].write_text("not a folder\n")
    f["missing"] = tmp / "does_not_exist.npz"
    f["missing_dir"] = tmp / "no_such_folder"
    return f


def xfail(reason):
    return pytest.mark.xfail(strict=True, reason=reason)


# (case id, "exp" | "theory", argument list with {name} placeholders for the files above, fragment of the message)
CASES = [
    # ---- mke-exp run arrays: broken npz files
    ("run-truncated", "exp", ["run", "arrays", "--data", "{truncated}", *RUN], "truncated.npz"),
    ("run-empty", "exp", ["run", "arrays", "--data", "{empty}", *RUN], "empty.npz"),
    ("run-npy-as-npz", "exp", ["run", "arrays", "--data", "{npy_as_npz}", *RUN], "single .npy array"),
    ("run-text-as-npz", "exp", ["run", "arrays", "--data", "{text_as_npz}", *RUN], "text.npz"),
    ("run-object", "exp", ["run", "arrays", "--data", "{object_npz}", *RUN], "object.npz"),
    ("run-bad-member", "exp", ["run", "arrays", "--data", "{bad_member}", *RUN], "bad_member.npz"),
    ("run-folder", "exp", ["run", "arrays", "--data", "{folder}", *RUN], "a_folder.npz"),
    ("run-missing-file", "exp", ["run", "arrays", "--data", "{missing}", *RUN], "does_not_exist.npz"),
    ("run-no-data", "exp", ["run", "arrays", *RUN], "--data FILE.npz"),
    # ---- mke-exp run arrays: wrong contents
    ("run-missing-key", "exp", ["run", "arrays", "--data", "{missing_key}", *RUN], "test_labels"),
    ("run-string-labels", "exp", ["run", "arrays", "--data", "{string_labels}", *RUN], "labels"),
    ("run-float-labels", "exp", ["run", "arrays", "--data", "{float_labels}", *RUN], "labels"),
    ("run-nan-labels", "exp", ["run", "arrays", "--data", "{nan_labels}", *RUN], "labels"),
    ("run-inf-labels", "exp", ["run", "arrays", "--data", "{inf_labels}", *RUN], "labels"),
    ("run-negative-labels", "exp", ["run", "arrays", "--data", "{negative_labels}", *RUN], "negative"),
    ("run-labels-2d", "exp", ["run", "arrays", "--data", "{labels_2d}", *RUN], "labels"),
    ("run-bool-labels", "exp", ["run", "arrays", "--data", "{bool_labels}", *RUN], "labels"),
    ("run-unseen-class", "exp", ["run", "arrays", "--data", "{test_class_unseen}", *RUN], "test_labels"),
    ("run-complex", "exp", ["run", "arrays", "--data", "{complex}", *RUN], "complex"),
    ("run-nan-feature", "exp", ["run", "arrays", "--data", "{nan_feature}", *RUN], "test_beta"),
    ("run-inf-feature", "exp", ["run", "arrays", "--data", "{inf_feature}", *RUN], "unlabeled_beta"),
    ("run-string-feature", "exp", ["run", "arrays", "--data", "{string_feature}", *RUN], "test_alpha"),
    ("run-zero-rows", "exp", ["run", "arrays", "--data", "{zero_rows}", *RUN], "no rows"),
    ("run-zero-rows-test", "exp", ["run", "arrays", "--data", "{zero_rows_test}", *RUN], "no rows"),
    ("run-scalar", "exp", ["run", "arrays", "--data", "{scalar}", *RUN], "unlabeled_alpha"),
    ("run-rows-mismatch", "exp", ["run", "arrays", "--data", "{rows_mismatch}", *RUN], "rows_mismatch.npz"),
    ("run-beta-rows", "exp", ["run", "arrays", "--data", "{beta_rows}", *RUN], "beta_rows.npz"),
    ("run-width-mismatch", "exp", ["run", "arrays", "--data", "{width_mismatch}", *RUN], "width.npz"),
    ("run-test-overflow", "exp", ["run", "arrays", "--data", "{test_overflow}", *RUN], "test_alpha"),
    # ---- mke-exp run arrays: your own teacher's output and labels to encode
    ("run-ext-probs-sum", "exp", ["run", "arrays", "--data", "{ext_probs_sum}", *RUN], "sums to 2"),
    ("run-ext-probs-cols", "exp", ["run", "arrays", "--data", "{ext_probs_cols}", *RUN],
     "teacher_probs must be (n, 3)"),
    ("run-ext-probs-nan", "exp", ["run", "arrays", "--data", "{ext_probs_nan}", *RUN], "teacher_probs must hold"),
    ("run-ext-pseudo-rows", "exp", ["run", "arrays", "--data", "{ext_pseudo_rows}", *RUN],
     "pseudo_labels has 119 rows"),
    ("run-ext-pseudo-strings", "exp", ["run", "arrays", "--data", "{ext_pseudo_strings}", *RUN], "pseudo_labels"),
    ("run-ext-test-rows", "exp", ["run", "arrays", "--data", "{ext_test_rows}", *RUN], "teacher_test_pred has 5"),
    ("run-ext-test-probs", "exp", ["run", "arrays", "--data", "{ext_test_probs_shape}", *RUN],
     "teacher_test_probs must be (n, 3)"),
    ("run-ext-both", "exp", ["run", "arrays", "--data", "{ext_both}", *RUN], "not both"),
    ("run-ext-test-only", "exp", ["run", "arrays", "--data", "{ext_test_only}", *RUN], "output on D_u"),
    ("run-ext-half-dl", "exp", ["run", "arrays", "--data", "{ext_half_dl}", *RUN], "misses the key(s) labels"),
    ("run-label-gap", "exp", ["run", "arrays", "--data", "{label_gap}", *RUN], "skip class(es) 1, 3"),
    ("run-single-class", "exp", ["run", "arrays", "--data", "{single_class}", *RUN], "single class"),
    # ---- mke-exp bench arrays
    ("bench-truncated", "exp", ["bench", "arrays", "--data", "{truncated}", "--steps", "1", "--device", "cpu"],
     "truncated.npz"),
    ("bench-empty", "exp", ["bench", "arrays", "--data", "{empty}", "--steps", "1", "--device", "cpu"], "empty.npz"),
    ("bench-npy", "exp", ["bench", "arrays", "--data", "{npy_as_npz}", "--steps", "1", "--device", "cpu"],
     "single_as.npz"),
    ("bench-string-labels", "exp", ["bench", "arrays", "--data", "{string_labels}", "--steps", "1",
                                    "--device", "cpu"], "labels"),
    ("bench-batch-0", "exp", ["bench", "arrays", "--batch-size", "0"], "--batch-size"),
    # ---- mke-exp options and --set values
    ("set-batch-1", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--set", "train.batch_size=1"],
     "train.batch_size"),
    ("set-gamma-nan", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--set", "mke.gamma=nan"], "mke.gamma"),
    ("set-lr-inf", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--set", "train.lr=inf"], "train.lr"),
    ("set-split-seed-neg", "exp", ["run", "vggsound", "--data", "{missing_dir}", *RUN,
                                   "--set", "data.split_seed=-1"], "data.split_seed"),
    ("set-unknown-key", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--set", "foo.bar=1"], "foo.bar"),
    ("set-unknown-data-key", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--set", "data.split_seed=1"],
     "data.split_seed"),
    ("set-no-equals", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--set", "train.lr"], "train.lr"),
    ("set-epochs-text", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--set", "train.epochs=abc"],
     "train.epochs"),
    ("set-bool-text", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--set", "data.standardize=maybe"],
     "data.standardize"),
    ("set-ignored-key", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--set", "model.backbone=resnet18"],
     "model.backbone"),
    ("opt-epochs-0", "exp", ["run", "arrays", "--data", "{good}", "--epochs", "0"], "--epochs"),
    ("opt-seeds-text", "exp", ["run", "arrays", "--data", "{good}", "--seeds", "a,b"], "--seeds"),
    ("opt-methods-unknown", "exp", ["run", "arrays", "--data", "{good}", "--methods", "wizard"], "wizard"),
    ("opt-device", "exp", ["run", "arrays", "--data", "{good}", "--device", "tpu"], "--device"),
    ("opt-unknown-task", "exp", ["run", "no-such-task"], "no-such-task"),
    ("opt-out-is-file", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--out", "{a_file}"], "a_file.txt"),
    # ---- mke-exp prepare
    ("prepare-latin1", "exp", ["prepare", "vggsound", "--raw", "{latin_raw}", "--out", "{missing_dir}"], "UTF-8"),
    ("prepare-twice", "exp", ["prepare", "vggsound", "--raw", "{twice_raw}", "--out", "{missing_dir}"], "line 1"),
    ("prepare-header", "exp", ["prepare", "vggsound", "--raw", "{header_raw}", "--out", "{missing_dir}"],
     "header"),
    ("prepare-no-csv", "exp", ["prepare", "vggsound", "--raw", "{no_csv_raw}", "--out", "{missing_dir}"],
     "vggsound.csv"),
    ("prepare-arrays", "exp", ["prepare", "arrays", "--raw", "{good}", "--out", "{missing_dir}"], "arrays"),
    ("prepare-unknown", "exp", ["prepare", "wizard", "--raw", "{no_csv_raw}", "--out", "{missing_dir}"], "wizard"),
    ("prepare-ravdess-empty", "exp", ["prepare", "ravdess", "--raw", "{ravdess_empty}", "--out", "{missing_dir}"],
     "ravdess_empty"),
    ("run-ravdess-missing", "exp", ["run", "ravdess", "--data", "{missing_dir}", *RUN], "no_such_folder"),
    ("run-vggsound-file", "exp", ["run", "vggsound", "--data", "{a_file}", *RUN], "a_file.txt"),
    # ---- mke-exp report
    ("report-corrupt", "exp", ["report", "{runs_corrupt}"], "arrays__teacher__seed0.json"),
    ("report-nan", "exp", ["report", "{runs_nan}"], "arrays__teacher__seed0.json"),
    ("report-list", "exp", ["report", "{runs_list}"], "r.json"),
    ("report-nan-metric", "exp", ["report", "{runs_nan_metric}"], "r.json: metric test_accuracy is NaN"),
    ("run-checkpoints-is-a-file", "exp", ["run", "arrays", "--data", "{good}", "--out", "{out_ckpt_file}", *RUN],
     "checkpoints is a file"),
    ("report-empty", "exp", ["report", "{runs_empty}"], "runs_empty"),
    ("report-missing", "exp", ["report", "{missing_dir}"], "no_such_folder"),
    ("report-file", "exp", ["report", "{a_file}"], "a_file.txt"),
    # ---- mke-theory check --data
    ("check-truncated", "theory", ["check", "--data", "{check_truncated}"], "check_truncated.npz"),
    ("check-empty", "theory", ["check", "--data", "{empty}"], "empty.npz"),
    ("check-npy", "theory", ["check", "--data", "{npy_as_npz}"], "single .npy array"),
    ("check-text", "theory", ["check", "--data", "{text_as_npz}"], "text.npz"),
    ("check-bad-member", "theory", ["check", "--data", "{bad_member}"], "bad_member.npz"),
    ("check-missing-key", "theory", ["check", "--data", "{check_missing}"], "pseudo_labels"),
    ("check-zero-rows", "theory", ["check", "--data", "{check_zero_rows}"], "0 row"),
    ("check-complex", "theory", ["check", "--data", "{check_complex}"], "complex"),
    ("check-string-labels", "theory", ["check", "--data", "{check_string_labels}"], "labels"),
    ("check-string-pseudo", "theory", ["check", "--data", "{check_string_pseudo}"], "pseudo_labels"),
    ("check-string-alpha", "theory", ["check", "--data", "{check_string_alpha}"], "alpha"),
    ("check-nan", "theory", ["check", "--data", "{check_nan}"], "NaN"),
    ("check-rows", "theory", ["check", "--data", "{check_rows}"], "beta"),
    ("check-single-class", "theory", ["check", "--data", "{check_single_class}"], "single class"),
    ("check-arrays-bundle", "theory", ["check", "--data", "{good}"],
     "check needs pseudo_labels (M,) or teacher_probs"),
    ("check-run-probs-1d", "theory", ["check", "--data", "{check_run_probs_1d}"], "teacher_probs must be"),
    ("check-run-probs-sum", "theory", ["check", "--data", "{check_run_probs_sum}"], "must sum to 1"),
    ("check-run-no-beta", "theory", ["check", "--data", "{check_run_no_u}"], "misses the key(s) unlabeled_beta"),
    ("check-missing-file", "theory", ["check", "--data", "{missing}"], "does_not_exist.npz"),
    ("check-both", "theory", ["check", "--data", "{check_rows}", "--generator", "gaussian"], "exactly one"),
    ("check-neither", "theory", ["check"], "exactly one"),
    ("check-generator", "theory", ["check", "--generator", "wizard"], "--generator"),
    ("check-k-0", "theory", ["check", "--generator", "gaussian", "--k", "0"], "--k"),
    ("check-radius-neg", "theory", ["check", "--generator", "gaussian", "--radius", "-1"], "--radius"),
    # ---- mke-theory twomoon / simulate options
    ("twomoon-seeds-0", "theory", ["twomoon", "--seeds", "0"], "--seeds"),
    ("twomoon-gamma-neg", "theory", ["twomoon", "--gamma", "-1"], "--gamma"),
    ("twomoon-out-file", "theory", ["twomoon", "--seeds", "1", "--no-figure", "--out", "{a_file}"], "a_file.txt"),
    ("simulate-noise", "theory", ["simulate", "--noise", "1.5"], "--noise"),
    ("simulate-noise-text", "theory", ["simulate", "--noise", "a,b"], "--noise"),
    ("simulate-steps-0", "theory", ["simulate", "--steps", "0"], "--steps"),
    ("simulate-out-file", "theory", ["simulate", "--seeds", "1", "--steps", "1", "--out", "{a_file}"],
     "a_file.txt"),
]

XFAIL = {}  # case id -> reason, for a case whose fix is still missing (none)


def _area_tables():
    """The further tables in ``bad_input_cases/<area>.py``: each module holds ``CASES`` (as above) and
    ``make_files(tmp) -> {name: path}`` (names unique across all tables), optionally ``XFAIL``."""
    for path in sorted((Path(__file__).parent / "bad_input_cases").glob("[!_]*.py")):
        spec = importlib.util.spec_from_file_location(f"bad_input_cases_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


AREAS = list(_area_tables())
for _area in AREAS:
    CASES += _area.CASES
    XFAIL.update(getattr(_area, "XFAIL", {}))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_inputs")
    made = _make_files(tmp)
    for area in AREAS:
        more = area.make_files(tmp)
        clash = set(more) & set(made)
        assert not clash, f"{area.__name__}: file names {sorted(clash)} are taken"
        made.update(more)
    return made


def _digests(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _params():
    for case, which, args, fragment in CASES:
        marks = [xfail(XFAIL[case])] if case in XFAIL else []
        yield pytest.param(which, args, fragment, id=case, marks=marks)


@pytest.mark.parametrize("which, args, fragment", list(_params()))
def test_bad_input_ends_in_one_sentence(files, which, args, fragment):
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    root = files["good"].parent
    before = _digests(root)
    result = CliRunner().invoke(exp_cli if which == "exp" else theory_cli, argv)
    output = result.output
    assert result.exit_code in (1, 2), (result.exit_code, output)
    assert "Traceback" not in output and "this is a bug" not in output.lower(), output
    assert "Aborted!" not in output, output
    assert fragment in output, (fragment, output)
    after = _digests(root)
    assert {p: after.get(p) for p in before} == before  # nothing that existed was changed or removed


def test_the_table_is_large_enough():
    assert len(CASES) >= 60
    assert len({case for case, *_ in CASES}) == len(CASES)


# ---- standardisation of huge and tiny features -----------------------------------------------------------------


@pytest.mark.parametrize("factor", [1e200, 1e-200, 1.0])
def test_standardize_gives_the_same_values_for_any_finite_scale(factor):
    split = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
    arrays = dict(labeled_alpha=split.labeled_alpha, labels=split.labels, unlabeled_alpha=split.unlabeled_alpha,
                  unlabeled_beta=split.unlabeled_beta, test_alpha=split.test_alpha, test_beta=split.test_beta,
                  test_labels=split.test_labels)
    scaled = {k: (v.astype(np.float64) * factor if k.endswith(("alpha", "beta")) else v) for k, v in arrays.items()}
    reference = standardize(split_from_arrays(arrays))
    result = standardize(split_from_arrays(scaled))
    for key in ("labeled_alpha", "unlabeled_alpha", "unlabeled_beta", "test_alpha", "test_beta"):
        value = getattr(result, key)
        assert np.all(np.isfinite(value)) and value.std() > 0.5, key  # not wiped to zeros
        np.testing.assert_allclose(value, getattr(reference, key), rtol=1e-5, atol=1e-5, err_msg=key)


def test_huge_bundle_loads_with_the_same_standardised_features(tmp_path):
    split = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
    from mke_experiments.tasks.arrays import load

    plain = load(ArraysData(), write_bundle(tmp_path / "plain.npz", split))
    huge = load(ArraysData(), write_bundle(
        tmp_path / "huge.npz", split, **{k: getattr(split, k).astype(np.float64) * 1e200 for k in
                                         ("labeled_alpha", "unlabeled_alpha", "unlabeled_beta", "test_alpha",
                                          "test_beta")}))
    np.testing.assert_allclose(huge.test_alpha, plain.test_alpha, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(huge.unlabeled_beta, plain.unlabeled_beta, rtol=1e-5, atol=1e-5)
