"""Robustness at test time (``mke-exp robustness``): the models of a run with β (or α) removed or noised."""

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from mke_experiments.cli import cli
from mke_experiments.protocol.robustness import (
    evaluate,
    evaluate_model,
    features_zeroed,
    npz_test_set,
    saved_models,
    split_test_set,
)
from mke_experiments.train import predict
from mke_theory.core.errors import MKEError
from mke_theory.generators import gaussian_mixture
from mke_theory.results.robustness import (
    effective_robustness,
    format_robustness,
    relative_robustness,
    summarize_robustness,
)

CLASSES = np.array(["cat", "dog", "owl"])


def _run(args):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def arrays_run(tmp_path_factory):
    """A run of the arrays task on raw features far from standardised (×1000 + 5) with string labels: feeding
    the networks anything but the run's standardisation, once, shows in the clean accuracy."""
    folder = tmp_path_factory.mktemp("arrays")
    s = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=150, n_test=90, random_state=0)
    raw = lambda x: 1000 * x + 5  # noqa: E731
    bundle = dict(labeled_alpha=raw(s.labeled_alpha), labels=CLASSES[s.labels], unlabeled_alpha=raw(s.unlabeled_alpha),
                  unlabeled_beta=raw(s.unlabeled_beta), test_alpha=raw(s.test_alpha), test_beta=raw(s.test_beta),
                  test_labels=CLASSES[s.test_labels])
    np.savez(folder / "bundle.npz", **bundle)
    _run(["run", "arrays", "--data", str(folder / "bundle.npz"), "--out", str(folder / "run"), "--seeds", "0,1",
          "--epochs", "15", "--device", "cpu", "--methods", "teacher,um_student,mm_student"])
    return folder / "run", folder / "bundle.npz", bundle


@pytest.fixture(scope="module")
def mfeat_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mfeat") / "run"
    _run(["run", "mfeat", "--out", str(out), "--seeds", "0", "--epochs", "2", "--device", "cpu",
          "--methods", "teacher,mm_student", "--set", "model.modality_dropout=0.3"])
    return out


def _clean(frame):
    return frame[(frame["condition"] == "noise") & (frame["level"] == 0)]


@pytest.mark.parametrize("which", ["arrays", "mfeat"])
def test_the_clean_accuracy_is_the_records_test_accuracy_exactly(which, arrays_run, mfeat_run):
    """The test set reaches the networks as it did in the run: standardised once (mfeat: the split rebuilt from
    the record; arrays: the raw npz through the Predictor's statistics)."""
    run_dir, data = (arrays_run[0], arrays_run[1]) if which == "arrays" else (mfeat_run, None)
    result = evaluate(run_dir, data=data)
    assert result.notes == []
    models = saved_models(run_dir)
    clean = _clean(result.frame)
    for m in models:
        acc = clean[(clean["method"] == m.method) & (clean["seed"] == m.seed)]["accuracy"]
        assert len(acc) == 2  # σ = 0 on β and on α: the same clean input
        assert (acc == m.record["metrics"]["test_accuracy"]).all()


def test_standardising_twice_is_caught_by_the_clean_accuracy(arrays_run, tmp_path):
    """Already standardised arrays given as raw ones are standardised again: the clean accuracy leaves the
    record and a note says so."""
    run_dir, _, bundle = arrays_run
    model = saved_models(run_dir)[0]
    once = npz_test_set(model, bundle, "bundle")
    np.savez(tmp_path / "z.npz", test_alpha=once.alpha, test_beta=once.beta, test_labels=bundle["test_labels"])
    notes = evaluate(run_dir, data=tmp_path / "z.npz").notes
    assert notes and "in its record" in notes[0]


def _predictions(model, alpha, beta):
    inputs = (torch.from_numpy(alpha), torch.from_numpy(beta))[: model.predictor.modalities]
    return predict(model.predictor.model, inputs, "cpu").numpy()


def test_removing_beta_changes_a_multimodal_model_and_not_a_unimodal_one(arrays_run, mfeat_run):
    run_dir, _, bundle = arrays_run
    for m in saved_models(run_dir):
        test = npz_test_set(m, bundle, "bundle")
        clean = _predictions(m, test.alpha, test.beta)
        removed = _predictions(m, test.alpha, np.zeros_like(test.beta))  # the training mean, standardised
        with features_zeroed(m.predictor.model, "beta", m.multimodal) as hooked:
            zeroed = _predictions(m, test.alpha, test.beta)
        assert hooked == m.multimodal
        if m.multimodal:
            assert not np.array_equal(clean, removed) and not np.array_equal(clean, zeroed)
        else:
            np.testing.assert_array_equal(clean, removed)
            np.testing.assert_array_equal(clean, zeroed)
    frame = evaluate(run_dir, data=arrays_run[1]).frame
    teacher = frame[(frame["method"] == "teacher") & (frame["modality"] == "beta")]
    clean = _clean(frame)
    assert set(teacher["accuracy"]) == set(clean[clean["method"] == "teacher"]["accuracy"])  # every β row: clean
    m = next(m for m in saved_models(mfeat_run) if m.multimodal)  # a student trained with modality dropout
    test = split_test_set(m)
    other = np.roll(test.beta, 1, axis=0)  # β of other samples
    assert not np.array_equal(_predictions(m, test.alpha, test.beta), _predictions(m, test.alpha, other))
    with features_zeroed(m.predictor.model, "beta", True):  # β's features zeroed: what β holds no longer counts
        np.testing.assert_array_equal(_predictions(m, test.alpha, test.beta), _predictions(m, test.alpha, other))
    assert not m.predictor.model.encoder_beta._forward_hooks  # the hook goes on leaving


def test_noise_level_zero_is_the_clean_input_and_noise_changes_predictions(mfeat_run):
    m = next(m for m in saved_models(mfeat_run) if m.multimodal)
    test = split_test_set(m)
    rows = pd.DataFrame(evaluate_model(m, test, levels=(0, 1, 4)))
    noise = rows[rows["condition"] == "noise"]
    at0 = noise[noise["level"] == 0]["accuracy"]
    assert (at0 == m.record["metrics"]["test_accuracy"]).all()
    assert list(noise["level"]) == [0, 1, 4, 0, 1, 4]  # β first, then α
    assert noise[(noise["modality"] == "alpha") & (noise["level"] == 4)]["accuracy"].item() < at0.iloc[0]


def test_relative_and_effective_robustness_by_hand():
    levels, f, b = [0, 0.5, 1, 2], [0.8, 0.7, 0.6, 0.2], [0.9, 0.9, 0.8, 0.5]
    # trapezoids of f: 0.5·(0.8+0.7)/2 + 0.5·(0.7+0.6)/2 + 1·(0.6+0.2)/2 = 1.1, over the span 2
    assert relative_robustness(levels, f) == pytest.approx(0.55)
    # f − [b + f(0) − b(0)] = 0, −0.1, −0.1, −0.2: trapezoids −0.025 − 0.05 − 0.15 = −0.225, over 2
    assert effective_robustness(levels, f, b) == pytest.approx(-0.1125)
    assert effective_robustness(levels, b, b) == 0
    assert relative_robustness(levels, [0.7] * 4) == pytest.approx(0.7)  # a flat curve: its accuracy
    grid = np.linspace(0, 1, 11)  # MultiBench's grid: its summed trapezoids of width 0.1, span 1
    curve = np.array([0.9, 0.88, 0.85, 0.8, 0.7, 0.66, 0.6, 0.5, 0.45, 0.4, 0.3])
    multibench = sum((curve[i] + curve[i + 1]) * 0.1 / 2 for i in range(10))
    assert relative_robustness(grid, curve) == pytest.approx(multibench)
    with pytest.raises(MKEError, match="increasing order"):
        relative_robustness([0, 1, 1], [0.5, 0.4, 0.3])


def test_the_summary_averages_the_per_seed_numbers():
    rows = []
    curves = {("teacher", False): {0: [0.6, 0.6, 0.6], 1: [0.7, 0.7, 0.7]},
              ("mm_student", True): {0: [0.8, 0.6, 0.4], 1: [0.9, 0.9, 0.6]}}
    for (method, mm), seeds in curves.items():
        for seed, curve in seeds.items():
            for level, acc in zip([0, 1, 2], curve):
                rows.append(dict(label=method, method=method, multimodal=mm, seed=seed, modality="beta",
                                 condition="noise", level=float(level), accuracy=acc))
            for condition in ("removed", "zeroed"):
                rows.append(dict(label=method, method=method, multimodal=mm, seed=seed, modality="beta",
                                 condition=condition, level=np.nan, accuracy=curve[-1]))
    summary = summarize_robustness(pd.DataFrame(rows)).set_index("label")
    mm = summary.loc["mm_student"]
    # seed 0: (0.7 + 0.5)/2 = 0.6; seed 1: (0.9 + 0.75)/2 = 0.825
    assert mm["relative_mean"] == pytest.approx((0.6 + 0.825) / 2)
    # the teacher's mean curve is flat: effective = relative − clean, per seed −0.2 and −0.075
    assert mm["effective_mean"] == pytest.approx((-0.2 - 0.075) / 2)
    assert summary.loc["teacher", "effective_mean"] == pytest.approx(0)
    assert mm["clean_mean"] == pytest.approx(0.85) and mm["removed_mean"] == pytest.approx(0.5)
    text = format_robustness(summary.reset_index(), caption="made up")
    assert "teacher (does not read β)" in text and "| mm_student | 2 | 85.0 ± 7.1 |" in text


def test_the_command_prints_the_table_and_writes_the_figure(arrays_run, tmp_path):
    run_dir, data, _ = arrays_run
    figure = tmp_path / "robust.png"
    res = _run(["robustness", str(run_dir), "--data", str(data), "--levels", "0.5,1", "--figure", str(figure)])
    assert "β perturbed at test time" in res.output and "α perturbed at test time" in res.output
    assert "| teacher (does not read β) | 2 |" in res.output and "| mm_student | 2 |" in res.output
    assert "eff. robustness vs teacher" in res.output and "σ=0.5 | σ=1 |" in res.output
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_folder_without_models_and_wrong_data_are_one_sentence_errors(arrays_run, mfeat_run, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["robustness", str(tmp_path)])
    assert res.exit_code == 1 and "holds no saved models" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(cli, ["robustness", str(arrays_run[0])])
    assert res.exit_code == 1 and "needs the test data" in res.output
    res = runner.invoke(cli, ["robustness", str(mfeat_run), "--data", str(arrays_run[1])])
    assert res.exit_code == 1 and "drop --data" in res.output
    res = runner.invoke(cli, ["robustness", str(mfeat_run), "--levels", "0,x"])
    assert res.exit_code == 2 and "comma-separated numbers" in res.output
