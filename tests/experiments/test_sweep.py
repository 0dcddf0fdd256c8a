"""``mke-exp sweep`` (issue 24, point 1): records per size and method, resume that trains nothing, the printed
gain is the records' paired mean difference, the figure, and D_l subsampled the way the sweep promises."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from click.testing import CliRunner

from mke_experiments.cli import cli
from mke_experiments.protocol.seeds import run_config
from mke_experiments.protocol.sweep import format_sweep, plan_sweep, sweep_row, sweepable_tasks
from mke_experiments.tasks.arrays import stratified_subset
from mke_experiments.testing.bundles import write_bundle
from mke_experiments.train import loop
from mke_theory.core.records import make_record, read_records
from mke_theory.diagnose import check_bundle
from mke_theory.generators import gaussian_mixture

SIZES, SEEDS = (20, 60), (0, 1)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def table_of(output: str) -> dict:
    """size -> {seeds, teacher, mm, gain} read off the printed table's rows."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].isdigit():
            rows[int(cells[0])] = dict(seeds=int(cells[1]), teacher=float(cells[2]), mm=float(cells[3]),
                                       gain=float(cells[4]), check=cells[6], verdict=cells[8])
    return rows


def test_sweep_trains_each_size_once_prints_the_paired_gain_of_its_records_and_resumes_training_nothing(
        tmp_path, monkeypatch):
    epochs = []
    train_one_epoch = loop.train_one_epoch
    monkeypatch.setattr(loop, "train_one_epoch", lambda *a, **k: epochs.append(1) or train_one_epoch(*a, **k))
    out, figure = tmp_path / "runs", tmp_path / "gain.png"
    args = ("sweep", "mfeat", "--labeled", ",".join(map(str, SIZES)), "--seeds", ",".join(map(str, SEEDS)),
            "--epochs", "2", "--device", "cpu", "--out", out, "--figure", figure)
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert epochs, "the counter must see the first run train"  # else the resume check below proves nothing
    records = read_records(out)
    keys = sorted((r["config"]["data"]["n_labeled"], r["method"], r["seed"]) for r in records)
    assert keys == sorted((size, m, s) for size in SIZES for m in ("teacher", "mm_student") for s in SEEDS)
    assert figure.stat().st_size > 10_000 and not (out / "sweep.png").exists()
    assert len(list((out / "check").glob("*.npz"))) == len(SIZES) * len(SEEDS)  # one check bundle per seed and size

    table = table_of(first.output)
    assert sorted(table) == list(SIZES)
    spread = []
    for size in SIZES:
        acc = {(r["method"], r["seed"]): 100 * r["metrics"]["test_accuracy"] for r in records
               if r["config"]["data"]["n_labeled"] == size}
        diffs = [acc["mm_student", s] - acc["teacher", s] for s in SEEDS]
        spread.append(abs(diffs[0] - diffs[1]))
        row = table[size]
        assert row["seeds"] == len(SEEDS)
        assert row["gain"] == pytest.approx(np.mean(diffs), abs=0.006)  # printed to 2 decimals
        assert row["teacher"] == pytest.approx(np.mean([acc["teacher", s] for s in SEEDS]), abs=0.06)
        assert row["mm"] == pytest.approx(np.mean([acc["mm_student", s] for s in SEEDS]), abs=0.06)
        # the check's column: the mean of mke-exp check's prediction on each seed's bundle in OUT/check/
        identity = next(r["config_hash"] for r in records if r["config"]["data"]["n_labeled"] == size)
        predicted = [100 * check_bundle(dict(np.load(out / "check" / f"mfeat__check__seed{s}__{identity}.npz")),
                                        max_samples=2000, random_state=s)["predicted_gain"]["estimate"] for s in SEEDS]
        spread.append(abs(predicted[0] - predicted[1]))
        assert float(row["check"]) == pytest.approx(np.mean(predicted), abs=0.06)
        assert row["verdict"] and set(row["verdict"].replace(",", " ").split()) <= {"helps", "hurts", "unclear", "1"}
    assert min(spread) > 0.2, "the seeds must differ, or a dropped seed would print the same mean"

    epochs.clear()
    before = {p.name: p.read_bytes() for p in out.glob("*.json")}
    second = invoke(*args)
    assert second.exit_code == 0, second.output
    assert epochs == []  # resumed: not one epoch trained
    assert {p.name: p.read_bytes() for p in out.glob("*.json")} == before
    assert table_of(second.output) == table


def _record(method, seed, accuracy):
    return make_record("mfeat", method, seed, {"test_accuracy": accuracy}, {"task": "mfeat"}, 0.0)


def test_sweep_row_is_the_paired_difference_with_its_t_interval_and_the_mean_of_the_checks():
    teacher, mm = [0.50, 0.60, 0.70], [0.55, 0.61, 0.78]  # a paired interval: far narrower than an unpaired one
    records = [_record("teacher", s, a) for s, a in enumerate(teacher)]
    records += [_record("mm_student", s, a) for s, a in enumerate(mm)]
    records += [_record("mm_student", 9, 0.99)]  # a seed without its teacher: not a pair
    checks = [dict(predicted_gain=dict(estimate=e, low=e - 0.1, high=e + 0.1), verdict=v)
              for e, v in ((0.02, "helps"), (0.04, "unclear"), (0.06, "helps"))]
    row = sweep_row(100, records, checks)
    d = 100 * (np.array(mm) - np.array(teacher))
    half = scipy.stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert row["n"] == 3
    assert row["gain"] == pytest.approx(d.mean())
    assert (row["gain_low"], row["gain_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert (row["check"], row["check_low"], row["check_high"]) == pytest.approx((4.0, -6.0, 14.0))
    assert row["verdicts"] == ("helps", "unclear", "helps")
    assert "| 100 | 3 |" in format_sweep([row], "caption") and "helps 2, unclear 1" in format_sweep([row], "c")


def test_stratified_subset_keeps_every_class_is_exact_in_size_seeded_and_nested():
    labels = np.repeat([0, 1, 2], [50, 30, 3])
    for n in (3, 5, 10, 40, 83):
        keep = stratified_subset(labels, n)
        counts = np.bincount(labels[keep], minlength=3)
        assert len(keep) == len(set(keep)) == n and counts.min() >= 1
        assert np.all(np.abs(counts - n * np.array([50, 30, 3]) / 83) <= 1.0 + (counts == 1))
    assert np.array_equal(stratified_subset(labels, 40), stratified_subset(labels, 40))
    assert not np.array_equal(stratified_subset(labels, 40), stratified_subset(labels, 40, seed=1))
    assert set(stratified_subset(labels, 10)) <= set(stratified_subset(labels, 40))


def test_an_arrays_sweep_subsamples_d_l_and_keeps_d_u_and_each_size_is_its_own_record_identity(tmp_path):
    split = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
    bundle = write_bundle(tmp_path / "b.npz", split)
    points = plan_sweep("arrays", (6, 30), (0,), data=bundle)
    assert [p.split.n_labeled for p in points] == [6, 30]
    assert np.bincount(points[0].split.labels, minlength=3).tolist() == [2, 2, 2]
    assert all(p.split.n_unlabeled == 120 for p in points)
    configs = [run_config(p.cfg, p.split) for p in points]
    assert [c["data"]["n_labeled"] for c in configs] == [6, 30]
    assert configs[0]["split_id"] != configs[1]["split_id"]
    whole = plan_sweep("arrays", (30,), (0,), data=bundle)  # data.n_labeled=30 is all of D_l: the same data
    assert whole[0].split.split_id == points[1].split.split_id
    assert set(sweepable_tasks()) >= {"arrays", "mfeat"}
