"""The experiment framework: every registered task end to end, configs, resume, DDP, bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mke_experiments.cli import cli
from mke_experiments.config import apply_overrides, resolve_config
from mke_experiments.protocol import METHODS, fit_mke, run, run_seed
from mke_experiments.tasks import TASKS, get_task
from mke_experiments.testing.bundles import write_bundle
from mke_theory.core.records import read_records
from mke_theory.generators import gaussian_mixture

ROOT = Path(__file__).resolve().parents[2]
FAST = ("train.epochs=2",)


bundle = write_bundle


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_registered_task_runs_end_to_end(name, tmp_path):
    """Each task brings its own tiny data (its ``smoke`` hook): a new task is tested without editing this file."""
    assert get_task(name).smoke is not None, f"task {name} has no smoke hook to make tiny data"
    data, small = get_task(name).smoke(tmp_path)
    overrides = FAST + small
    records = run(name, data_dir=data, out=tmp_path / "runs", seeds=(0,), device="cpu", overrides=overrides)
    methods = {r["method"] for r in records}
    assert methods == set(METHODS)
    for r in records:
        assert 0 <= r["metrics"][f"test_{get_task(name).primary}"] <= 1 and r["config"]["task"] == name
        assert len(r["history"]) == 2
    assert len(read_records(tmp_path / "runs")) == len(METHODS)


def test_mfeat_mke_student_beats_its_teacher():
    # only the two methods compared: every method of a seed trains on its own (seeded) network and data
    records = run("mfeat", seeds=(0, 1), methods=("teacher", "mm_student"), device="cpu")
    acc = {(r["method"], r["seed"]): r["metrics"]["test_accuracy"] for r in records}
    gain = np.mean([acc[("mm_student", s)] - acc[("teacher", s)] for s in (0, 1)])
    assert gain > 0.02, gain


def test_resume_after_an_interruption_gives_the_same_records(tmp_path):
    cfg = resolve_config(get_task("mfeat"), ("train.epochs=3",))
    split = get_task("mfeat").load(cfg.data)
    full = run_seed(cfg, split, 0, ("teacher", "mm_student"), out=tmp_path / "a").records
    run_seed(cfg, split, 0, ("teacher", "mm_student"), out=tmp_path / "b", stop_after=2)  # killed in epoch 3
    assert read_records(tmp_path / "b") == [] and list((tmp_path / "b" / "checkpoints").glob("*.pt"))
    resumed = run_seed(cfg, split, 0, ("teacher", "mm_student"), out=tmp_path / "b").records
    for a, b in zip(sorted(full, key=lambda r: r["method"]), sorted(resumed, key=lambda r: r["method"])):
        assert a["metrics"] == b["metrics"] and a["history"] == b["history"]
    again = run_seed(cfg, split, 0, ("teacher", "mm_student"), out=tmp_path / "b").records  # all finished: skipped
    assert [r["metrics"] for r in again] == [r["metrics"] for r in resumed]


def test_overrides_are_checked_and_reach_the_record(tmp_path):
    base = get_task("mfeat").default_config
    cfg = apply_overrides(base, ["model.fusion=mid", "train.epochs=1", "data.beta=kar", "train.amp=false"])
    assert (cfg.model.fusion, cfg.train.epochs, cfg.data.beta, cfg.train.amp) == ("mid", 1, "kar", False)
    for bad, message in [("model.nope=1", "unknown config key 'model.nope'"), ("train.epochs=many", "integer"),
                         ("model.fusion=early", "late, mid"), ("data.alpha=zzz", "data.alpha"), ("model=1", "group"),
                         ("train.epochs", "KEY=VALUE"), ("train.lr=-1", "train.lr")]:
        with pytest.raises(ValueError, match=message):
            apply_overrides(base, [bad])
    records = run("mfeat", seeds=(0,), methods=("teacher",), device="cpu",
                  overrides=("model.fusion=mid", "train.epochs=1"))
    assert records[0]["config"]["model"]["fusion"] == "mid" and records[0]["config"]["data"]["alpha"] == "zer"


def test_fit_mke_from_python_returns_the_student():
    import torch

    task = get_task("mfeat")
    split = task.load(task.default_config.data)  # a standardised MultimodalSplit, as fit_mke expects
    result = fit_mke(split, task.default_config, device="cpu")
    student = result.models["mm_student"]
    logits = student(torch.as_tensor(split.test_alpha), torch.as_tensor(split.test_beta))
    assert logits.shape == (len(split.test_labels), 10)
    acc = {r["method"]: r["metrics"]["test_accuracy"] for r in result.records}
    assert set(acc) == {"teacher", "mm_student"} and acc["mm_student"] > acc["teacher"]
    assert (logits.argmax(1).numpy() == split.test_labels).mean() == pytest.approx(acc["mm_student"])


@pytest.fixture(scope="module")
def finished_arrays_run(tmp_path_factory):
    """A folder with the finished records (and the teacher's checkpoint) of a good run of the arrays task."""
    tmp = tmp_path_factory.mktemp("finished")
    out = tmp / "runs"
    good = CliRunner().invoke(cli, ["run", "arrays", "--data", str(bundle(tmp / "ok.npz")), "--out", str(out),
                                    "--seeds", "0", "--methods", "teacher", "--epochs", "1"])
    assert good.exit_code == 0, good.output
    return out


@pytest.mark.parametrize("changes, message, process", [
    (dict(labels=None), "misses the key(s) labels", True),  # one real `python -m mke_experiments`: exit status 1
    (dict(unlabeled_beta=np.zeros((5, 2))), "unlabeled_beta has 5 rows", False),  # the others in-process: the
    (dict(test_alpha=np.full((60, 2), np.nan)), "test_alpha holds NaN", False),  # same command function, the
    (dict(test_labels=-np.ones(60, int)), "negative label", False),  # same user_errors exit, no fresh interpreter
])
def test_bad_bundles_end_in_one_sentence_and_keep_existing_records(tmp_path, finished_arrays_run, changes, message,
                                                                    process):
    out = tmp_path / "runs"
    shutil.copytree(finished_arrays_run, out)
    before = {p.name: p.read_bytes() for p in out.glob("*.json")}
    assert before
    args = ["run", "arrays", "--data", str(bundle(tmp_path / "bad.npz", **changes)), "--out", str(out),
            "--epochs", "1"]
    if process:
        bad = subprocess.run([sys.executable, "-m", "mke_experiments", *args], capture_output=True, text=True,
                             timeout=120)
        code, stderr = bad.returncode, bad.stderr
    else:
        bad = CliRunner().invoke(cli, args)
        code, stderr = bad.exit_code, bad.stderr
    assert code == 1 and message in stderr and "Traceback" not in stderr, stderr
    assert {p.name: p.read_bytes() for p in out.glob("*.json")} == before


@pytest.mark.parametrize("args, message", [
    (["run", "arrays"], "needs --data"),
    (["run", "arrays", "--data", "/nonexistent/x.npz"], "no such file"),
    (["run", "nope"], "unknown task 'nope'"),
    (["run", "mfeat", "--seeds", "a"], "comma-separated list of integers"),
    (["run", "mfeat", "--methods", "teacher,oracle"], "unknown method(s) oracle"),
    (["run", "mfeat", "--set", "train.bogus=1"], "unknown config key"),
    (["prepare", "mfeat", "--raw", ".", "--out", "x"], "needs no preparation"),
    (["prepare", "ravdess", "--raw", "/nonexistent", "--out", "x"], "no such folder"),
])
def test_cli_errors_are_one_sentence(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and message in result.output, result.output


def test_list_shows_every_task_with_defaults():
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0
    for name in TASKS:
        assert name in result.output
    assert "epochs=" in result.output


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_two_process_ddp_run_on_gloo(tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29533", "-m", "mke_experiments",
                           "run", "mfeat", "--seeds", "0", "--methods", "teacher,mm_student", "--epochs", "20",
                           "--device", "cpu", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    records = read_records(tmp_path)
    assert {r["method"] for r in records} == {"teacher", "mm_student"}
    assert all(r["world_size"] == 2 for r in records)
    # gradients are averaged across the two ranks: both models learn (chance is 0.1)
    assert all(r["metrics"]["test_accuracy"] > 0.4 for r in records), [r["metrics"] for r in records]


def test_bench_prints_ratios_side_by_side(tmp_path):
    result = CliRunner().invoke(cli, ["bench", "mfeat", "--steps", "1", "--device", "cpu",
                                      "--json", str(tmp_path / "bench.json")])
    assert result.exit_code == 0, result.output
    assert "fp32 eager" in result.output and "bf16 autocast" in result.output and "×1.00 vs fp32" in result.output
    assert "data loader alone" in result.output and "waiting for data" in result.output  # mfeat ships its data
    written = json.loads((tmp_path / "bench.json").read_text())
    assert [r["variant"] for r in written["rows"]][:2] == ["fp32 eager", "bf16 autocast"]
    fed = written["rows"][-1]
    assert 0 <= fed["waiting_fraction"] < 1 and fed["samples_per_s"] > 0 and fed["peak_gpu_bytes"] is None


def test_ravdess_prepare_and_run_from_the_command_line(tmp_path):
    from mke_experiments.testing.ravdess import make_ravdess_tree

    raw = make_ravdess_tree(tmp_path / "raw", actors=(1, 5, 9, 10), emotions=range(1, 9),
                            corrupt=("01-01-03-01-01-01-09",))
    small = ["--set", "prepare.frames=2", "--set", "prepare.size=24", "--set", "prepare.n_mels=16"]
    prep = CliRunner().invoke(cli, ["prepare", "ravdess", "--raw", str(raw), "--out", str(tmp_path / "cache"), *small])
    assert prep.exit_code == 0, prep.output
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert any("01-01-03-01-01-01-09" in str(s) for s in manifest["skipped"])  # the corrupt clip is listed
    args = ["run", "ravdess", "--data", str(tmp_path / "cache"), "--epochs", "1", "--seeds", "0", "--device", "cpu",
            "--set", "data.labeled_actors=1", "--set", "model.width=4", "--set", "model.hidden=16", *small]
    result = CliRunner().invoke(cli, [*args, "--methods", "teacher,mm_student", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "| ravdess | mm_student |" in result.output
    leaky = CliRunner().invoke(cli, [*args, "--methods", "teacher", "--set", "data.split=random"])
    assert leaky.exit_code == 0 and "leaky" in leaky.output


def test_label_free_selection_and_soft_pseudo_labels_run(tmp_path):
    records = run("mfeat", seeds=(0,), methods=("teacher", "mm_student"), device="cpu",
                  overrides=("train.epochs=3", "train.selection=agreement", "mke.pseudo_labels=soft",
                             "mke.temperature=2.0"))
    student = next(r for r in records if r["method"] == "mm_student")
    assert all("selection_score" in h for h in student["history"])  # agreement with the teacher on held-out D_u
    assert student["config"]["mke"]["pseudo_labels"] == "soft" and 0 <= student["best_epoch"] < 3


def test_fit_mke_takes_a_dict_of_arrays_and_checks_it():
    split = gaussian_mixture(n_unlabeled=120, random_state=0)
    arrays = dict(labeled_alpha=split.labeled_alpha, labels=split.labels, unlabeled_alpha=split.unlabeled_alpha,
                  unlabeled_beta=split.unlabeled_beta, test_alpha=split.test_alpha, test_beta=split.test_beta,
                  test_labels=split.test_labels)
    cfg = apply_overrides(get_task("arrays").default_config, ["train.epochs=2"])
    result = fit_mke(arrays, cfg, device="cpu")
    assert {r["method"] for r in result.records} == {"teacher", "mm_student"}
    gap = r"test_labels hold\(s\) the value\(s\) 7, not class\(es\) of labels \(0, 1\)"  # named, not 8 classes
    with pytest.raises(ValueError, match=gap):
        fit_mke(dict(arrays, test_labels=np.full(len(split.test_labels), 7)), cfg, device="cpu")


def test_tensorboard_logs_per_epoch(tmp_path):
    pytest.importorskip("tensorboard")
    result = CliRunner().invoke(cli, ["run", "mfeat", "--seeds", "0", "--methods", "teacher", "--epochs", "2",
                                      "--device", "cpu", "--tensorboard", str(tmp_path / "tb")])
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "tb" / "mfeat__teacher__seed0").glob("events.out.tfevents.*"))


def test_confident_mm_student_is_one_table_row_and_reduces_to_the_mke_student():
    """mm_student_confident (one row of mke_theory.core.methods + its rule): threshold 0 keeps every pseudo label and
    trains exactly the MKE student; a real threshold masks exactly the labels below it."""
    import torch

    from mke_experiments.protocol import RunFiles, SeedRun
    from mke_theory.core.methods import get_method
    from mke_theory.core.split import IGNORE

    split = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
    base = resolve_config(get_task("arrays"), FAST)
    every = resolve_config(get_task("arrays"), FAST + ("mke.confidence_threshold=0",))
    both = run_seed(every, split, 0, ("teacher", "mm_student", "mm_student_confident")).records
    by_method = {r["method"]: r["metrics"] for r in both}
    assert by_method["mm_student_confident"].pop("pseudo_labels_kept") == 1.0
    assert by_method["mm_student_confident"] == by_method["mm_student"]

    files = RunFiles(None, "arrays", 0, "x", split.split_id)
    seed_run = SeedRun(base, split, 0, files, torch.device("cpu"))
    teacher, _ = seed_run.train_teacher()
    pl = seed_run.pseudo_label(teacher, need_confidence=True)
    threshold = float(np.median(pl.confidence))  # a threshold that splits this (2-epoch) teacher's labels
    seed_run.cfg = dataclasses_replace_mke(base, confidence_threshold=threshold)
    _, targets, extra = seed_run.student_data(get_method("mm_student_confident"), pl)
    low = pl.confidence < threshold
    assert 0 < low.sum() < len(low)
    assert (targets.numpy()[low] == IGNORE).all()
    np.testing.assert_array_equal(targets.numpy()[~low], pl.targets.numpy()[~low])
    assert extra["pseudo_labels_kept"] == pytest.approx(1 - low.mean())
    _, plain, _ = seed_run.student_data(get_method("mm_student"), pl)  # other rows are untouched
    assert torch.equal(plain, pl.targets)
    with pytest.raises(ValueError, match="need hard ones"):
        from mke_experiments.protocol import run_split

        run_split(dataclasses_replace_mke(base, pseudo_labels="soft"), split, [0], ("teacher", "mm_student_confident"))


def dataclasses_replace_mke(cfg, **changes):
    import dataclasses

    return dataclasses.replace(cfg, mke=dataclasses.replace(cfg.mke, **changes))


def test_prepare_settings_come_from_the_cache_and_a_contradiction_is_an_error(tmp_path):
    """The record states what the cache holds (frames=2 here, the preset says 4); claiming otherwise fails."""
    data, small = get_task("ravdess").smoke(tmp_path)
    one = ("train.epochs=1",)  # the assertions are about the config, not what training learns
    records = run("ravdess", data_dir=data, seeds=(0,), methods=("teacher",), device="cpu",
                  overrides=one + small)
    assert records[0]["config"]["prepare"] == {"frames": 2, "size": 24, "n_mels": 16, "seconds": 3.7}
    assert get_task("ravdess").default_config.prepare.frames == 4
    run("ravdess", data_dir=data, seeds=(0,), methods=("teacher",), device="cpu",
        overrides=one + small + ("prepare.frames=2",))  # agreeing with the cache is fine
    with pytest.raises(ValueError, match=r"prepared with prepare.frames=2, not 8.*--set prepare.frames=8"):
        run("ravdess", data_dir=data, seeds=(0,), device="cpu", overrides=one + small + ("prepare.frames=8",))


@pytest.mark.parametrize("task, item, message", [
    ("mfeat", "model.backbone=resnet50", "does not use model.backbone"),
    ("vggsound", "mke.input_noise=0.5", "does not use mke.input_noise"),
    ("mfeat", "prepare.frames=2", "has no prepare settings"),
    ("mfeat", "model.bogus=1", "keys of model: hidden"),
    ("mfeat", "bogus=1", "top-level keys: task"),
    ("mfeat", "train.batch_size=1", r"train.batch_size must lie in \[2, inf\]"),
    ("mfeat", "mke.gamma=nan", "mke.gamma must be a finite number"),
    ("mfeat", "train.lr=inf", "train.lr must be a finite number"),
    ("mfeat", "mke.confidence_threshold=1.5", r"must lie in \[0, 1\]"),
])
def test_configs_cannot_lie(task, item, message):
    with pytest.raises(ValueError, match=message):
        resolve_config(get_task(task), (item,))


def test_click_reuses_the_declared_limits():
    from mke_experiments.config import TrainConfig, click_type

    assert CliRunner().invoke(cli, ["run", "mfeat", "--epochs", "0"]).exit_code == 2
    assert click_type(TrainConfig, "batch_size").min == 2
    assert list(click_type(TrainConfig, "optimizer").choices) == ["adam", "sgd", "adamw"]


def test_noisy_student_learns_from_d_l_with_labels_and_d_u_with_pseudo_labels():
    """NOISY student (Xie et al.): α of D_l with its labels ∪ α of D_u with the teacher's pseudo labels;
    dropping D_l (or its labels) would make it a second UM student."""
    import torch

    from mke_experiments.protocol import RunFiles, SeedRun
    from mke_theory.core.methods import get_method

    split = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
    cfg = resolve_config(get_task("arrays"), FAST)
    seed_run = SeedRun(cfg, split, 0, RunFiles(None, "arrays", 0, "x", split.split_id), torch.device("cpu"))
    teacher, _ = seed_run.train_teacher()
    pl = seed_run.pseudo_label(teacher)
    (inputs,), targets, _ = seed_run.student_data(get_method("noisy_student"), pl)
    n_l = split.n_labeled
    assert len(inputs) == len(targets) == n_l + split.n_unlabeled
    np.testing.assert_array_equal(inputs[:n_l].numpy(), split.labeled_alpha.astype(np.float32))
    np.testing.assert_array_equal(targets[:n_l].numpy(), split.labels)
    np.testing.assert_array_equal(targets[n_l:].numpy(), pl.predicted)
    (um_inputs,), um_targets, _ = seed_run.student_data(get_method("um_student"), pl)
    assert len(um_inputs) == split.n_unlabeled and torch.equal(um_targets, pl.targets)
