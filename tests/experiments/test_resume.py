"""Resume must never reuse what belongs to other data or another run: the record identity, checkpoints
(identity, --force, corruption), concurrent runs into one folder, and what a run says it did."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mke_experiments.cli import cli
from mke_experiments.config import resolve_config
from mke_experiments.protocol import SkippedMethodWarning, run_seed, run_split
from mke_experiments.tasks import get_task
from mke_experiments.tasks.arrays import split_from_arrays, standardize
from mke_experiments.testing.bundles import write_bundle
from mke_experiments.train import checkpoints
from mke_theory.core.errors import MKEError
from mke_theory.core.records import make_record, read_records, write_record
from mke_theory.core.split import SPLIT_PARTS
from mke_theory.generators import gaussian_mixture

ROOT = Path(__file__).resolve().parents[2]
MKE_EXP = [sys.executable, "-m", "mke_experiments.cli"]


def base_split():
    return gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)


def with_val(split, flip_val=False):
    """``split`` plus a validation set (40 test-like samples from another draw)."""
    other = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=10, n_test=40, random_state=1)
    labels = other.test_labels if not flip_val else (other.test_labels + 1) % 3
    return dataclasses.replace(split, val_alpha=other.test_alpha, val_beta=other.test_beta, val_labels=labels)


def bundle_of(path, split) -> Path:
    extra = {} if split.val_alpha is None else dict(val_alpha=split.val_alpha, val_beta=split.val_beta,
                                                    val_labels=split.val_labels)
    return write_bundle(path, split, **extra)


def arrays_split(split):
    """``split`` as the arrays task loads it (checked and standardised)."""
    return standardize(split_from_arrays({k: getattr(split, k) for k in SPLIT_PARTS if getattr(split, k) is not None},
                                         source="test"))


def fast_cfg(epochs=2, *overrides):
    return resolve_config(get_task("arrays"), (f"train.epochs={epochs}",) + overrides)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# ---- 1. the record identity covers everything that can change a result ------------------------------


def test_split_id_covers_validation_and_the_true_labels_of_d_u():
    split = with_val(base_split())
    ids = {"base": split.split_id}
    ids["val labels"] = with_val(base_split(), flip_val=True).split_id
    ids["no val"] = base_split().split_id
    ids["D_u labels"] = dataclasses.replace(split, unlabeled_labels=(split.unlabeled_labels + 1) % 3).split_id
    ids["no D_u labels"] = dataclasses.replace(split, unlabeled_labels=None).split_id
    ids["val alpha"] = dataclasses.replace(split, val_alpha=split.val_alpha + 1).split_id
    assert len(set(ids.values())) == len(ids), ids
    assert with_val(base_split()).split_id == split.split_id  # same numbers, same id


@pytest.mark.parametrize("change", ["val_labels", "unlabeled_labels"])
def test_a_bundle_with_other_labels_is_trained_again_not_skipped(tmp_path, change):
    """Before: split_id ignored the validation set and D_u's labels, so the second bundle's run skipped every
    method and printed the first bundle's table."""
    split = with_val(base_split())
    changed = (with_val(base_split(), flip_val=True) if change == "val_labels" else
               dataclasses.replace(split, unlabeled_labels=(split.unlabeled_labels + 1) % 3))
    a, b = bundle_of(tmp_path / "a.npz", split), bundle_of(tmp_path / "b.npz", changed)
    args = ("run", "arrays", "--out", tmp_path / "S", "--seeds", "0", "--epochs", "2",
            "--methods", "teacher,mm_student,mm_supervised", "--device", "cpu")
    first = invoke(*args, "--data", a)
    assert first.exit_code == 0, first.output
    second = invoke(*args, "--data", b)
    assert second.exit_code == 0, second.output
    records = read_records(tmp_path / "S")
    assert len(records) == 6  # three methods for each bundle, none reused
    assert len({r["split_id"] for r in records}) == 2
    by = {(r["method"], r["split_id"]): r for r in records}
    if change == "unlabeled_labels":  # the upper bound trains on D_u's true labels: it must differ
        sup = [r["metrics"] for (m, _), r in by.items() if m == "mm_supervised"]
        assert sup[0] != sup[1]


# ---- 2. checkpoints: --force, identity, corruption -------------------------------------------------------


def checkpoint_of(out: Path, method: str) -> Path:
    (ckpt,) = (out / "checkpoints").glob(f"arrays__{method}__*.pt")
    return ckpt


def spoil(ckpt: Path, **identity_changes) -> None:
    """Zero the weights in a checkpoint (and optionally claim another identity): a resumed run would show it."""
    state = torch.load(ckpt, weights_only=False)
    state["model"] = {k: torch.zeros_like(v) for k, v in state["model"].items()}
    state["history"] = [dict(e, loss=123.0) for e in state["history"]]
    if identity_changes:
        state["identity"] = dict(state["identity"] or {}, **identity_changes)
    torch.save(state, ckpt)


def records_by_method(records):
    return {r["method"]: (r["metrics"], r["history"]) for r in records}


def test_force_retrains_the_teacher_from_scratch(tmp_path):
    """Before: --force kept the teacher's checkpoint and resumed it, so a stale one decided the 'fresh' run."""
    cfg, split = fast_cfg(), arrays_split(base_split())
    fresh = run_seed(cfg, split, 0, ("teacher", "mm_student"), out=tmp_path / "fresh").records
    run_seed(cfg, split, 0, ("teacher", "mm_student"), out=tmp_path / "S")
    spoil(checkpoint_of(tmp_path / "S", "teacher"))
    forced = run_seed(cfg, split, 0, ("teacher", "mm_student"), out=tmp_path / "S", force=True).records
    assert records_by_method(forced) == records_by_method(fresh)
    assert records_by_method(read_records(tmp_path / "S")) == records_by_method(fresh)


def test_a_checkpoint_of_another_run_is_never_resumed(tmp_path):
    """Identity mismatch (copied in, renamed, or from an older version): a warning and a clean restart, which
    gives exactly the fresh run's records (the file's name belongs to this run; its content does not)."""
    cfg, split = fast_cfg(3), arrays_split(base_split())
    fresh = run_seed(cfg, split, 0, ("teacher",), out=tmp_path / "fresh").records
    run_seed(cfg, split, 0, ("teacher",), out=tmp_path / "S", stop_after=2)  # killed in epoch 3
    spoil(checkpoint_of(tmp_path / "S", "teacher"), seed=7)
    with pytest.warns(UserWarning, match="training from scratch"):
        resumed = run_seed(cfg, split, 0, ("teacher",), out=tmp_path / "S").records
    assert records_by_method(resumed) == records_by_method(fresh)


def test_a_checkpoint_of_the_same_run_still_resumes(tmp_path):
    cfg, split = fast_cfg(3), arrays_split(base_split())
    run_seed(cfg, split, 0, ("teacher",), out=tmp_path / "S", stop_after=2)
    spoil(checkpoint_of(tmp_path / "S", "teacher"))  # same identity: resumed, so its history shows
    (record,) = run_seed(cfg, split, 0, ("teacher",), out=tmp_path / "S").records
    assert [e["loss"] for e in record["history"][:2]] == [123.0, 123.0]


def test_a_corrupt_checkpoint_is_one_sentence_naming_it_and_force_gets_past_it(tmp_path):
    """Before: a RuntimeError traceback from torch.load."""
    bundle = write_bundle(tmp_path / "a.npz")
    args = ("run", "arrays", "--data", bundle, "--out", tmp_path / "S", "--seeds", "0", "--epochs", "2",
            "--methods", "teacher", "--device", "cpu")
    assert invoke(*args).exit_code == 0
    ckpt = checkpoint_of(tmp_path / "S", "teacher")
    ckpt.write_bytes(b"\x00 not a checkpoint")
    result = invoke(*args)
    assert result.exit_code == 1 and not isinstance(result.exception, RuntimeError)
    assert str(ckpt) in result.output and "delete it or pass --force" in result.output
    assert "Traceback" not in result.output
    forced = invoke(*args, "--force")
    assert forced.exit_code == 0, forced.output


def test_a_checkpoint_that_vanishes_before_it_is_read_counts_as_absent(tmp_path, monkeypatch):
    """The race of item 10, made deterministic: a concurrent run removes the file between the check and the
    load. Before: FileNotFoundError."""
    cfg, split = fast_cfg(3), arrays_split(base_split())
    fresh = run_seed(cfg, split, 0, ("teacher",), out=tmp_path / "fresh").records
    run_seed(cfg, split, 0, ("teacher",), out=tmp_path / "S", stop_after=2)
    real_load = torch.load

    def load_after_removal(path, *a, **k):
        Path(path).unlink(missing_ok=True)
        return real_load(path, *a, **k)

    monkeypatch.setattr(checkpoints.torch, "load", load_after_removal)
    resumed = run_seed(cfg, split, 0, ("teacher",), out=tmp_path / "S").records
    assert records_by_method(resumed) == records_by_method(fresh)


def test_load_checkpoint_says_what_is_wrong(tmp_path):
    assert checkpoints.load_checkpoint(tmp_path / "none.pt") is None
    (tmp_path / "dict.pt").write_bytes(b"")
    torch.save({"a": 1}, tmp_path / "dict.pt")
    with pytest.raises(MKEError, match=r"dict\.pt: not a training checkpoint.*delete it or pass --force"):
        checkpoints.load_checkpoint(tmp_path / "dict.pt")


# ---- 10. concurrent runs into one folder -------------------------------------------------------------------


def test_three_concurrent_runs_into_one_folder_all_succeed_with_the_single_runs_records(tmp_path):
    """Before: one of three concurrent runs died on a checkpoint another had just removed."""
    bundle = write_bundle(tmp_path / "a.npz")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))

    def command(out):
        return MKE_EXP + ["run", "arrays", "--data", str(bundle), "--out", str(out), "--seeds", "0,1",
                          "--epochs", "2", "--device", "cpu"]

    single = subprocess.run(command(tmp_path / "single"), env=env, capture_output=True, text=True, timeout=120)
    assert single.returncode == 0, single.stderr
    t0 = time.perf_counter()
    procs = [subprocess.Popen(command(tmp_path / "shared"), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert time.perf_counter() - t0 < 120
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    key = lambda r: (r["method"], r["seed"])  # noqa: E731
    want = {key(r): (r["metrics"], r["history"]) for r in read_records(tmp_path / "single")}
    got = {key(r): (r["metrics"], r["history"]) for r in read_records(tmp_path / "shared")}
    assert got == want
    assert not list((tmp_path / "shared").rglob(".*.tmp"))


# ---- 12. what a run says it did --------------------------------------------------------------------------


def test_selection_val_without_a_validation_set_says_last_epoch(tmp_path):
    bundle = write_bundle(tmp_path / "a.npz")  # no val_* arrays
    result = invoke("run", "arrays", "--data", bundle, "--out", tmp_path / "S", "--seeds", "0", "--epochs", "2",
                    "--methods", "teacher,mm_student", "--device", "cpu", "--set", "train.selection=val")
    assert result.exit_code == 0, result.output
    assert "model selection: last (no validation set)" in result.output
    for r in read_records(tmp_path / "S"):
        assert all("selection_score" not in e for e in r["history"])
        assert r["best_epoch"] == len(r["history"]) - 1


def test_selection_val_with_a_validation_set_says_val(tmp_path):
    bundle = bundle_of(tmp_path / "a.npz", with_val(base_split()))
    result = invoke("run", "arrays", "--data", bundle, "--seeds", "0", "--epochs", "2",
                    "--methods", "teacher", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("model selection: val")


def test_mm_supervised_without_the_labels_of_d_u_is_skipped_with_a_word(tmp_path):
    bundle = write_bundle(tmp_path / "a.npz", unlabeled_labels=None)
    result = invoke("run", "arrays", "--data", bundle, "--seeds", "0", "--epochs", "2",
                    "--methods", "teacher,mm_supervised", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "WARNING: mm_supervised is skipped: the split has no unlabeled_labels" in result.stderr
    assert result.stderr.count("mm_supervised is skipped") == 1
    split = arrays_split(dataclasses.replace(base_split(), unlabeled_labels=None))
    with pytest.warns(SkippedMethodWarning, match="mm_supervised is skipped"):
        records = run_split(fast_cfg(), split, (0,), ("teacher", "mm_supervised"), device="cpu")
    assert [r["method"] for r in records] == ["teacher"]


def test_data_for_a_task_that_brings_its_own_is_an_error(tmp_path):
    result = invoke("run", "mfeat", "--data", tmp_path / "X", "--seeds", "0", "--epochs", "1")
    assert result.exit_code == 1
    assert "mfeat brings its own data and would ignore --data" in result.output
    assert "Traceback" not in result.output


# ---- 6. mke-exp report picks the task's primary metric -------------------------------------------------


def nyu_record(method, seed, miou, task="nyudv2"):
    # pseudo_label_accuracy first: the old report took the first metric it found
    return make_record(task=task, method=method, seed=seed, config={"task": task}, wall_time_s=1.0,
                       metrics={"pseudo_label_accuracy": 0.5, "test_miou": miou, "test_pixel_accuracy": 0.7})


def test_report_uses_the_tasks_primary_metric(tmp_path):
    for seed, (t, s) in enumerate([(0.30, 0.35), (0.31, 0.37)]):
        write_record(nyu_record("teacher", seed, t), tmp_path)
        write_record(nyu_record("mm_student", seed, s), tmp_path)
    result = invoke("report", tmp_path)
    assert result.exit_code == 0, result.output
    assert "test_miou (%)" in result.output and "pseudo_label_accuracy" not in result.output


def test_report_of_tasks_with_different_primaries_asks_for_metric_or_task(tmp_path):
    write_record(nyu_record("teacher", 0, 0.3), tmp_path)
    write_record(make_record(task="arrays", method="teacher", seed=0, config={"task": "arrays"}, wall_time_s=1.0,
                             metrics={"test_accuracy": 0.8}), tmp_path)
    result = invoke("report", tmp_path)
    assert result.exit_code == 1
    assert "--metric" in result.output and "--task" in result.output and "Traceback" not in result.output
    assert invoke("report", tmp_path, "--task", "nyudv2").exit_code == 0
    assert invoke("report", tmp_path, "--metric", "test_accuracy").exit_code == 0
    bad = invoke("report", tmp_path, "--metric", "test_nope")
    assert bad.exit_code == 1 and "test_nope" in bad.output



def test_finishing_a_run_whose_checkpoint_another_run_removed_is_fine(tmp_path, monkeypatch):
    """The other half of the race, made deterministic: the checkpoint existed when looked at and is gone when
    removed (a concurrent run of the same identity finished first). Before: FileNotFoundError from unlink."""
    from mke_experiments.protocol import RunFiles

    files = RunFiles(tmp_path, "arrays", 0, "abc", "split")
    (tmp_path / "checkpoints").mkdir()
    record = make_record(task="arrays", method="mm_student", seed=0, config={"task": "arrays"}, wall_time_s=1.0,
                         metrics={"test_accuracy": 0.8})
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda p: p.suffix == ".pt" or real_exists(p))  # "there" when checked
    files.write(record, keep_checkpoint=False)
    assert len(read_records(tmp_path)) == 1
