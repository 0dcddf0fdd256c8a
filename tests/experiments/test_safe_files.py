"""Model files and checkpoints cannot run code (issue 23, case 13): they hold tensors and plain values, are read
with ``torch.load(..., weights_only=True)``, and a file that holds pickled objects (the old format, or one crafted
to run code when unpickled) is refused by ``Predictor.load``, by ``mke-exp predict`` and by checkpoint resume,
without running anything. Round trips stay exact: a loaded predictor predicts bit for bit what the saved one did,
and a run resumed from a checkpoint gives an uninterrupted run's records."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from mke_experiments.cli import cli
from mke_experiments.config import ModelConfig, resolve_config
from mke_experiments.models import build_student, register_model
from mke_experiments.protocol import run_seed
from mke_experiments.protocol.predictor import Predictor, convert_legacy
from mke_experiments.tasks import get_task
from mke_experiments.tasks.arrays import split_from_arrays, standardize
from mke_experiments.train import checkpoints
from mke_theory.core.errors import MKEError
from mke_theory.core.split import SPLIT_PARTS
from mke_theory.generators import gaussian_mixture

STATS = dict(scale=[2.0, 3.0], mean=[0.1, -0.2], std=[1.5, 0.5])


class MarksWhenUnpickled:
    """Unpickling this calls ``open(marker, "w")``, creating the file: a harmless stand-in for the code a crafted
    file would run the moment it is opened with ``weights_only=False``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def crafted(path, marker, **content):
    """A file ``torch.save`` wrote whose unpickling creates ``marker``, beside ``content``."""
    torch.save(dict(content, payload=MarksWhenUnpickled(marker)), path)
    return path


def student_predictor(seed: int = 0) -> Predictor:
    torch.manual_seed(seed)
    net = build_student((2,), (2,), 3, ModelConfig(hidden=16)).eval()
    return Predictor(net, 2, dict(alpha=STATS, beta=STATS), ["x", "y", "z"],
                     dict(task="arrays", method="mm_student", seed=seed, config_hash="abc"))


def inputs(n=50):
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, 2)) * 3, rng.normal(size=(n, 2)) * 3


def test_the_crafted_file_does_run_code_when_unpickled(tmp_path):
    """The test file is a real threat: opened the old way (weights_only=False), it creates the marker."""
    path = crafted(tmp_path / "evil.pt", tmp_path / "marker", format=1)
    torch.load(path, weights_only=False)
    assert (tmp_path / "marker").exists()


def test_predictor_load_refuses_a_crafted_file_and_runs_nothing(tmp_path):
    path = crafted(tmp_path / "evil.pt", tmp_path / "marker", format=1, modalities=2)
    with pytest.raises(MKEError, match=r"evil\.pt holds Python objects.*not opened.*convert_legacy"):
        Predictor.load(path)
    assert not (tmp_path / "marker").exists()


def test_mke_exp_predict_refuses_a_crafted_model_file_and_runs_nothing(tmp_path):
    (tmp_path / "run" / "models").mkdir(parents=True)
    crafted(tmp_path / "run" / "models" / "arrays__mm_student__seed0__abc.pt", tmp_path / "marker", format=1)
    alpha, beta = inputs()
    np.savez(tmp_path / "new.npz", alpha=alpha, beta=beta)
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "run"), "--data", str(tmp_path / "new.npz"),
                                      "--out", str(tmp_path / "p.npz")])
    assert result.exit_code == 1 and "not opened" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "marker").exists() and not (tmp_path / "p.npz").exists()


def arrays_split():
    split = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
    return standardize(split_from_arrays({k: getattr(split, k) for k in SPLIT_PARTS if getattr(split, k) is not None},
                                         source="test"))


def metrics_and_histories(records):
    return {r["method"]: (r["metrics"], r["history"]) for r in records}


def test_checkpoint_resume_refuses_a_crafted_checkpoint_runs_nothing_and_trains_from_scratch(tmp_path):
    """A crafted file where a run's checkpoint belongs (copied in, or an older version's): a warning, nothing
    unpickled, and a clean restart that gives the fresh run's records."""
    cfg, split = resolve_config(get_task("arrays"), ("train.epochs=3",)), arrays_split()
    fresh = run_seed(cfg, split, 0, ("teacher",), out=tmp_path / "fresh").records
    run_seed(cfg, split, 0, ("teacher",), out=tmp_path / "S", stop_after=2)
    (ckpt,) = (tmp_path / "S" / "checkpoints").glob("arrays__teacher__*.pt")
    state = torch.load(ckpt, weights_only=True)
    crafted(ckpt, tmp_path / "marker", **state)  # the run's own identity and epoch, plus the payload
    with pytest.warns(UserWarning, match=r"holds Python objects.*not opened.*training from scratch"):
        resumed = run_seed(cfg, split, 0, ("teacher",), out=tmp_path / "S").records
    assert not (tmp_path / "marker").exists()
    assert metrics_and_histories(resumed) == metrics_and_histories(fresh)


class OwnFusion(nn.Module):
    """A user's student of plain torch layers: not stackable, so it trains as one network (its checkpoint keeps
    torch's global generator state, a tensor, too)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.drop = nn.Linear(2, 8), nn.Linear(2, 8), nn.Dropout(0.3)
        self.head = nn.Linear(8, 3)

    def forward(self, alpha, beta):
        return self.head(self.drop(torch.relu(self.a(alpha) + self.b(beta))))


def test_a_run_resumed_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    """Stacked members (the teacher) and one network (a user's student, whose checkpoint keeps torch's global
    generator state too): checkpoints hold only torch's own types, are resumed (every load returned the state of
    epoch 2, not None: no restart) and give the uninterrupted run's records."""
    from mke_experiments.protocol.seeds import run_seeds
    from mke_experiments.train import loop

    cfg, split = resolve_config(get_task("arrays"), ("train.epochs=4",)), arrays_split()
    methods = ("teacher", "mm_student")
    fresh = run_seeds(cfg, split, [0], methods, out=tmp_path / "fresh", student=OwnFusion)[0].records
    loaded, real = [], checkpoints.load_checkpoint
    monkeypatch.setattr(loop, "load_checkpoint", lambda *a, **k: loaded.append(real(*a, **k)) or loaded[-1])
    resumed = []
    for method in methods:  # killed in epoch 3 of the method, then resumed
        run_seeds(cfg, split, [0], methods[: methods.index(method) + 1], out=tmp_path / "S", stop_after=2,
                  student=OwnFusion)
        (ckpt,) = (tmp_path / "S" / "checkpoints").glob(f"arrays__{method}__*.pt")
        names = checkpoints.pickled_names(ckpt)
        assert names is not None and not [n for n in names if not n.startswith(("torch.", "collections."))], names
        loaded.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # no "training from scratch"
            resumed = run_seeds(cfg, split, [0], methods[: methods.index(method) + 1], out=tmp_path / "S",
                                student=OwnFusion)[0].records
        assert [s["epoch"] for s in loaded if s is not None and s["identity"]["method"] == method] == [1], method
    assert metrics_and_histories(resumed) == metrics_and_histories(fresh)


# ---- model files ------------------------------------------------------------------------------------------------


def test_a_model_file_holds_only_tensors_and_plain_values_and_predicts_bit_for_bit_after_load(tmp_path):
    p = student_predictor()
    p.save(tmp_path / "m.pt")
    names = checkpoints.pickled_names(tmp_path / "m.pt")
    assert names is not None and not [n for n in names if not n.startswith(("torch.", "collections."))], names
    torch.load(tmp_path / "m.pt", weights_only=True)  # loads without allowing any class
    before = torch.get_rng_state()
    q = Predictor.load(tmp_path / "m.pt")
    assert torch.equal(torch.get_rng_state(), before)  # building the network did not draw from torch's generator
    assert type(q.model) is type(p.model) and not q.model.training
    alpha, beta = inputs()
    np.testing.assert_array_equal(q.predict_proba(alpha, beta), p.predict_proba(alpha, beta))
    assert list(q.predict(alpha, beta)) == list(p.predict(alpha, beta))
    assert (q.standardization, q.classes, q.info) == (p.standardization, p.classes, p.info)


def test_a_model_file_of_the_old_format_is_refused_and_converts_from_a_trusted_source(tmp_path):
    p = student_predictor(seed=3)
    torch.save(dict(format=1, model=p.model, modalities=2, standardization=p.standardization, classes=p.classes,
                    info=p.info), tmp_path / "old.pt")  # how Predictor.save wrote format 1
    with pytest.raises(MKEError, match=r"old\.pt holds Python objects \(mke_experiments\.models\.Student.*convert_"):
        Predictor.load(tmp_path / "old.pt")
    convert_legacy(tmp_path / "old.pt", tmp_path / "new.pt")
    q = Predictor.load(tmp_path / "new.pt")
    alpha, beta = inputs()
    np.testing.assert_array_equal(q.predict_proba(alpha, beta), p.predict_proba(alpha, beta))
    with pytest.raises(MKEError, match="not a model file of format 1"):
        convert_legacy(tmp_path / "new.pt", tmp_path / "again.pt")


def test_a_legacy_file_with_other_constructor_arguments_converts_to_the_same_network(tmp_path):
    """The arguments are read off the unpickled layers: mid fusion, dropout, modality dropout and widths must all
    come back (a wrong one changes the predictions or fails to take the weights)."""
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=5, fusion="mid", dropout=0.3, modality_dropout=0.4)
    net = build_student((3,), (4,), 6, cfg).eval()
    torch.save(dict(format=1, model=net, modalities=2, standardization=None, classes=None, info={}),
               tmp_path / "old.pt")
    q = convert_legacy(tmp_path / "old.pt", tmp_path / "new.pt")
    q = Predictor.load(tmp_path / "new.pt")
    assert (q.model.fusion, q.model.modality_dropout, q.model.head[0].p) == ("mid", 0.4, 0.3)
    rng = np.random.default_rng(0)
    alpha, beta = rng.normal(size=(7, 3)), rng.normal(size=(7, 4))
    with torch.no_grad():
        expected = torch.softmax(net(torch.tensor(alpha, dtype=torch.float32), torch.tensor(beta, dtype=torch.float32)),
                                 dim=1).numpy()
    np.testing.assert_array_equal(q.predict_proba(alpha, beta), expected)


class TinyFusion(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 3), nn.Linear(2, 3)

    def forward(self, alpha, beta):
        return self.a(alpha) + self.b(beta)


def test_your_own_network_is_named_at_load_time_never_unpickled(tmp_path):
    torch.manual_seed(0)
    p = Predictor(TinyFusion().eval(), 2)
    p.save(tmp_path / "own.pt")
    names = checkpoints.pickled_names(tmp_path / "own.pt")
    assert not [n for n in names if "TinyFusion" in n]  # stored by name as a string, not as a class to unpickle
    with pytest.raises(MKEError, match=r"own network .*TinyFusion.*model_class=TinyFusion"):
        Predictor.load(tmp_path / "own.pt")
    q = Predictor.load(tmp_path / "own.pt", model_class=TinyFusion)
    alpha, beta = inputs()
    np.testing.assert_array_equal(q.predict_proba(alpha, beta), p.predict_proba(alpha, beta))
    with pytest.raises(MKEError, match="do not fit the network"):
        Predictor.load(tmp_path / "own.pt", model_class=lambda: nn.Linear(2, 3))


@register_model
class RegisteredFusion(nn.Module):
    def __init__(self, d: int, k: int, scale: float = 1.0):
        super().__init__()
        self.a, self.b, self.scale = nn.Linear(d, k), nn.Linear(d, k), scale

    def forward(self, alpha, beta):
        return self.scale * (self.a(alpha) + self.b(beta))


def test_a_registered_network_is_built_again_from_its_arguments(tmp_path):
    torch.manual_seed(0)
    p = Predictor(RegisteredFusion(2, 4, scale=3.0).eval(), 2)
    p.save(tmp_path / "reg.pt")
    q = Predictor.load(tmp_path / "reg.pt")
    assert isinstance(q.model, RegisteredFusion) and q.model.scale == 3.0
    alpha, beta = inputs()
    np.testing.assert_array_equal(q.predict_proba(alpha, beta), p.predict_proba(alpha, beta))


def test_a_model_file_edited_to_other_arguments_is_one_sentence(tmp_path):
    p = student_predictor()
    p.save(tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    state["network"]["args"][2] = 5  # five classes: the head's weights no longer fit
    torch.save(state, tmp_path / "m.pt")
    with pytest.raises(MKEError, match=r"m\.pt: its weights do not fit the network mke_experiments\.models\.Student"):
        Predictor.load(tmp_path / "m.pt")


def test_a_damaged_model_file_is_still_a_damaged_file_not_an_unsafe_one(tmp_path):
    p = student_predictor()
    p.save(tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"\x00 junk")
    for name in ("half.pt", "junk.pt"):
        with pytest.raises(MKEError, match="not a readable model file") as caught:
            Predictor.load(tmp_path / name)
        assert "Python objects" not in str(caught.value)


def test_pickled_names_reads_a_pickle_without_running_it(tmp_path):
    buffer = io.BytesIO()
    torch.save({"x": MarksWhenUnpickled(tmp_path / "marker")}, buffer)
    (tmp_path / "f.pt").write_bytes(buffer.getvalue())
    names = checkpoints.pickled_names(tmp_path / "f.pt")
    assert any(n.endswith("open") for n in names), names
    assert not (tmp_path / "marker").exists()
