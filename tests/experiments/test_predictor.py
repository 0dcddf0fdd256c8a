"""The student a run returns and saves carries its preprocessing; your own torch teacher and student; which model
``mke-exp predict`` applies and the inputs it takes."""

import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from mke_experiments.cli import cli
from mke_experiments.config import resolve_config
from mke_experiments.protocol import fit_mke
from mke_experiments.protocol.predictor import Predictor
from mke_experiments.tasks import get_task
from mke_theory.core.errors import MKEError
from mke_theory.generators import gaussian_mixture

CLASSES = np.array(["cat", "dog", "owl"])


@pytest.fixture(scope="module")
def raw_bundle():
    """Far from standardised (×1000 + 5) features and string labels: what a user's arrays look like."""
    s = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=150, n_test=90, random_state=0)
    raw = lambda x: 1000 * x + 5  # noqa: E731
    return dict(labeled_alpha=raw(s.labeled_alpha), labels=CLASSES[s.labels], unlabeled_alpha=raw(s.unlabeled_alpha),
                unlabeled_beta=raw(s.unlabeled_beta), test_alpha=raw(s.test_alpha), test_beta=raw(s.test_beta),
                test_labels=CLASSES[s.test_labels])


@pytest.fixture(scope="module")
def config():
    return resolve_config(get_task("arrays"), ["train.epochs=5"], None)


@pytest.fixture(scope="module")
def fitted(raw_bundle, config):
    return fit_mke(raw_bundle, config, device="cpu")


def test_the_predictor_takes_raw_inputs_and_gives_the_records_accuracy_in_the_users_labels(fitted, raw_bundle):
    """Catches a student that expects standardised inputs (the newcomer's 28.6 % instead of 73.8 %) and
    predictions left as class indices."""
    for method in ("teacher", "mm_student"):
        p = fitted.predictors[method]
        inputs = (raw_bundle["test_alpha"], raw_bundle["test_beta"])[: p.modalities]
        pred = p.predict(*inputs)
        assert set(pred) <= set(CLASSES)
        record = next(r for r in fitted.records if r["method"] == method)
        assert (pred == raw_bundle["test_labels"]).mean() == record["metrics"]["test_accuracy"]
    bare = fitted.models["mm_student"](torch.as_tensor(raw_bundle["test_alpha"], dtype=torch.float32),
                                       torch.as_tensor(raw_bundle["test_beta"], dtype=torch.float32))
    assert not np.array_equal(bare.argmax(1).numpy(), fitted.predictors["mm_student"].predict_proba(
        raw_bundle["test_alpha"], raw_bundle["test_beta"]).argmax(1))  # the preprocessing matters here


def test_save_and_load_give_the_same_probabilities(fitted, raw_bundle, tmp_path):
    p = fitted.predictors["mm_student"]
    p.save(tmp_path / "s.pt")
    q = Predictor.load(tmp_path / "s.pt")
    np.testing.assert_array_equal(q.predict_proba(raw_bundle["test_alpha"], raw_bundle["test_beta"]),
                                  p.predict_proba(raw_bundle["test_alpha"], raw_bundle["test_beta"]))
    assert list(q.classes) == list(CLASSES) and q.info["method"] == "mm_student"
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(MKEError, match="not a readable model file"):
        Predictor.load(tmp_path / "bad.pt")
    with pytest.raises(MKEError, match="two modalities"):
        q.predict(raw_bundle["test_alpha"])
    with pytest.raises(MKEError, match=r"alpha must be \(n, "):
        q.predict(raw_bundle["test_alpha"][:, :1], raw_bundle["test_beta"])


def test_a_torch_teacher_is_used_not_trained(raw_bundle, config):
    """Its argmax on α of D_u are the pseudo labels; the teacher row is its own test accuracy."""
    torch.manual_seed(0)
    net = nn.Linear(raw_bundle["labeled_alpha"].shape[1], 3)  # a (bad) teacher of 3 classes on raw α
    result = fit_mke(raw_bundle, config, device="cpu", teacher=net)
    with torch.no_grad():
        on_u = net(torch.as_tensor(raw_bundle["unlabeled_alpha"], dtype=torch.float32)).argmax(1).numpy()
        on_test = net(torch.as_tensor(raw_bundle["test_alpha"], dtype=torch.float32)).argmax(1).numpy()
    np.testing.assert_array_equal(result.pseudo_labels, on_u)
    teacher = next(r for r in result.records if r["method"] == "teacher")
    assert teacher["config"]["teacher"] == "external" and teacher["history"] == []
    assert teacher["metrics"]["test_accuracy"] == pytest.approx((CLASSES[on_test] == raw_bundle["test_labels"]).mean())


def test_a_torch_teachers_validation_output_reaches_the_check_bundle(raw_bundle, config):
    """With a validation set, the check bundle holds the torch teacher's softmax on it (mke-theory check scores
    the teacher with it; without it an α probe would stand in)."""
    torch.manual_seed(0)
    net = nn.Linear(raw_bundle["labeled_alpha"].shape[1], 3)
    bundle = dict(raw_bundle, val_alpha=raw_bundle["test_alpha"][:30], val_beta=raw_bundle["test_beta"][:30],
                  val_labels=raw_bundle["test_labels"][:30])
    result = fit_mke(bundle, config, device="cpu", teacher=net, methods=("teacher",))
    with torch.no_grad():
        expected = torch.softmax(net(torch.as_tensor(bundle["val_alpha"], dtype=torch.float32)), 1).numpy()
    np.testing.assert_allclose(result.check["teacher_val_probs"], expected, rtol=1e-5, atol=1e-6)


class TinyFusion(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 3), nn.Linear(2, 3)

    def forward(self, alpha, beta):
        return self.a(alpha) + self.b(beta)


def test_your_own_student_network_is_the_one_trained(raw_bundle, config):
    result = fit_mke(raw_bundle, config, device="cpu", student=TinyFusion)
    assert isinstance(result.models["mm_student"], TinyFusion)
    assert isinstance(result.predictors["mm_student"].model, TinyFusion)


def test_run_saves_models_and_predict_writes_the_predictors_output(raw_bundle, tmp_path):
    np.savez(tmp_path / "b.npz", **raw_bundle)
    np.savez(tmp_path / "new.npz", alpha=raw_bundle["test_alpha"], beta=raw_bundle["test_beta"])
    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(cli, ["run", "arrays", "--data", str(tmp_path / "b.npz"), "--out", str(out),
                              "--seeds", "0,1", "--epochs", "2", "--device", "cpu", "--methods", "teacher,mm_student"])
    assert res.exit_code == 0, res.output
    assert len(list((out / "models").glob("*__mm_student__seed*.pt"))) == 2
    res = runner.invoke(cli, ["predict", str(out), "--data", str(tmp_path / "new.npz"), "--seed", "1",
                              "--out", str(tmp_path / "p.npz")])
    assert res.exit_code == 0, res.output
    saved = np.load(tmp_path / "p.npz")
    model = Predictor.load(next((out / "models").glob("*__mm_student__seed1__*.pt")))
    np.testing.assert_array_equal(saved["pred"], model.predict(raw_bundle["test_alpha"], raw_bundle["test_beta"]))
    assert saved["probs"].shape == (len(raw_bundle["test_labels"]), 3)
    res = runner.invoke(cli, ["predict", str(out), "--data", str(tmp_path / "new.npz"), "--seed", "7"])
    assert res.exit_code == 1 and "not 7" in res.output
    res = runner.invoke(cli, ["predict", str(out), "--data", str(tmp_path / "new.npz"), "--method", "um_student"])
    assert res.exit_code == 1 and "no model of method 'um_student'" in res.output
    assert "its methods: mm_student, teacher" in res.output
    model_file = next((out / "models").glob("*__teacher__seed1__*.pt"))  # the file itself as RUN: that model
    res = runner.invoke(cli, ["predict", str(model_file), "--data", str(tmp_path / "new.npz"), "--out",
                              str(tmp_path / "t.npz")])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(np.load(tmp_path / "t.npz")["pred"],
                                  Predictor.load(model_file).predict(raw_bundle["test_alpha"]))


def _saved(folder, stem, seed):
    """A small predictor of the library's teacher saved as ``folder/models/<stem>.pt``."""
    from mke_experiments.config import ModelConfig
    from mke_experiments.models import build_teacher

    torch.manual_seed(seed)
    p = Predictor(build_teacher((2,), 3, ModelConfig(hidden=4)).eval(), 1, info=dict(seed=seed))
    (folder / "models").mkdir(parents=True, exist_ok=True)
    p.save(folder / "models" / f"{stem}.pt")
    return folder / "models" / f"{stem}.pt"


def test_choose_model_never_lets_file_name_order_pick_a_run(tmp_path):
    """Two runs' models in one folder (before: the first file name won, silently); --config-hash (or a prefix of
    it) picks one, then --seed; glob characters in the method are a name."""
    from mke_experiments.protocol.predictor import choose_model

    a0 = _saved(tmp_path, "arrays__teacher__seed0__aa11", 0)
    a2 = _saved(tmp_path, "arrays__teacher__seed2__aa11", 2)
    b1 = _saved(tmp_path, "mine__teacher__seed1__bb22", 1)
    with pytest.raises(MKEError, match=r"2 runs: arrays config aa11 \(seed\(s\) 0, 2\); mine config bb22 "
                                       r"\(seed\(s\) 1\); choose one with --config-hash"):
        choose_model(tmp_path, "teacher")
    assert choose_model(tmp_path, "teacher", config_hash="aa") == a0
    assert choose_model(tmp_path, "teacher", config_hash="aa11", seed=2) == a2
    assert choose_model(tmp_path, "teacher", config_hash="bb22") == b1
    assert choose_model(b1, "ignored") == b1
    with pytest.raises(MKEError, match="not 1"):
        choose_model(tmp_path, "teacher", config_hash="aa", seed=1)
    with pytest.raises(MKEError, match="no teacher model of config hash 'cc'; its config hashes: aa11, bb22"):
        choose_model(tmp_path, "teacher", config_hash="cc")
    for pattern in ("*", "teach*", "t?acher", "[t]eacher"):
        with pytest.raises(MKEError, match="a name, not a pattern"):
            choose_model(tmp_path, pattern, config_hash="aa")
    with pytest.raises(MKEError, match="is a model file"):
        choose_model(b1, "teacher", seed=0)


@pytest.mark.parametrize("alpha, message", [
    (np.array([["1.5", "2"]] * 3), r"alpha holds strings \(dtype <U3\)"),  # before: parsed as numbers, silently
    ([["a", "b"]] * 3, "alpha holds strings"),  # before: a ValueError traceback
    (np.zeros((0, 2)), r"alpha has no rows \(shape \(0, 2\)\)"),  # before: a RuntimeError from torch.cat
    (np.zeros(0), "alpha has no rows"),
    (np.ones((3, 2)) + 1j, "alpha holds complex numbers"),  # before: the imaginary part dropped with a warning
    (np.array([[1.0, "x"]] * 3, dtype=object), "alpha holds values that are not real numbers"),
    (np.array([[1.0, 2j]] * 3, dtype=object), "alpha holds values that are not real numbers"),
    (np.array(["2020-01-01"] * 3, dtype="datetime64[D]"), "alpha holds values of dtype datetime64"),
    (5.0, "alpha is a single number"),
])
def test_transform_names_the_array_that_is_not_real_numbers(alpha, message):
    p = Predictor(nn.Linear(2, 3), 1, dict(alpha=dict(scale=[1.0, 1.0], mean=[0.0, 0.0], std=[1.0, 1.0])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's ComplexWarning would mean the imaginary part was dropped
        with pytest.raises(MKEError, match=message):
            p.transform(alpha)
    assert p.transform(np.array([[1, 2]], dtype=np.int64))[0].dtype == torch.float32  # integers are numbers
    assert p.transform(np.array([[1.0, 2.0]], dtype=object))[0].shape == (1, 2)  # and so are objects holding them


def test_a_torch_image_teacher_labels_a_split_of_images(config):
    """'Any task, images included': α as (N, 1, 8, 8) images, β as vectors; the teacher is a small CNN."""
    from sklearn.datasets import load_digits

    from mke_theory.core.split import MultimodalSplit

    images, digits = load_digits(return_X_y=True)
    images = (images / 16.0).astype(np.float32)
    alpha, beta = images.reshape(-1, 1, 8, 8), images[:, ::2].copy()
    idx = np.random.default_rng(0).permutation(len(digits))
    u, t = idx[:300], idx[300:400]
    split = MultimodalSplit(labeled_alpha=alpha[:0], labels=digits[:0], unlabeled_alpha=alpha[u],
                            unlabeled_beta=beta[u], test_alpha=alpha[t], test_beta=beta[t], test_labels=digits[t],
                            n_classes=10)
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))
    result = fit_mke(split, config, device="cpu", teacher=cnn)
    with torch.no_grad():
        expected = cnn(torch.as_tensor(alpha[u])).argmax(1).numpy()
    np.testing.assert_array_equal(result.pseudo_labels, expected)
    assert {r["method"] for r in result.records} == {"teacher", "mm_student"}
