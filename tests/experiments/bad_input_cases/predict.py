"""``mke-exp predict`` on bad inputs (issue 23, cases 4, 9, 10 and 13): a folder with two runs' models, glob
characters in ``--method``, string, zero-row and complex input arrays, and model files that hold pickled code
(the old format, a crafted file) or a network of the user's own class, which the command line cannot name."""

from __future__ import annotations

import numpy as np
import torch

PREDICT = ("predict", "{predict_run}", "--data")


class _MarksWhenUnpickled:
    """Unpickling this calls ``open(marker, "w")``: a harmless stand-in for code a crafted file would run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _predictor(modalities: int, seed: int = 0):
    """A small untrained predictor of the library's own networks, as a run saves one (2 features per modality)."""
    from mke_experiments.config import ModelConfig
    from mke_experiments.models import build_student, build_teacher
    from mke_experiments.protocol.predictor import Predictor

    torch.manual_seed(seed)
    cfg = ModelConfig(hidden=8)
    net = build_student((2,), (2,), 3, cfg) if modalities == 2 else build_teacher((2,), 3, cfg)
    stats = dict(scale=[1.0, 1.0], mean=[0.0, 0.0], std=[1.0, 1.0])
    return Predictor(net.eval(), modalities, dict(alpha=stats, beta=stats), ["a", "b", "c"],
                     dict(task="arrays", method="mm_student" if modalities == 2 else "teacher", seed=seed,
                          config_hash="0"))


def _run(tmp, name: str, models: dict):
    """A run folder ``tmp/name`` whose ``models/`` holds ``models`` (file stem -> predictor, or bytes written)."""
    folder = tmp / name / "models"
    folder.mkdir(parents=True)
    for stem, model in models.items():
        if isinstance(model, bytes):
            (folder / f"{stem}.pt").write_bytes(model)
        else:
            model.save(folder / f"{stem}.pt")
    return tmp / name


def _pickled(obj) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def make_files(tmp) -> dict:
    rng = np.random.default_rng(0)
    student = _predictor(2)
    inputs = dict(alpha=rng.normal(size=(5, 2)), beta=rng.normal(size=(5, 2)))
    files = dict(
        predict_run=_run(tmp, "predict_run", {"arrays__mm_student__seed0__aaaa": student,
                                               "arrays__teacher__seed0__aaaa": _predictor(1)}),
        predict_two_runs=_run(tmp, "predict_two_runs", {"arrays__mm_student__seed0__aaaa": student,
                                                        "mfeat__mm_student__seed0__bbbb": _predictor(2, seed=1)}),
        predict_legacy=_run(tmp, "predict_legacy", {"arrays__mm_student__seed0__aaaa": _pickled(dict(
            format=1, model=student.model, modalities=2, standardization=student.standardization,
            classes=student.classes, info=student.info))}),
        predict_crafted=_run(tmp, "predict_crafted", {"arrays__mm_student__seed0__aaaa": _pickled(dict(
            format=1, model=_MarksWhenUnpickled(tmp / "predict_marker"), modalities=2))}),
        predict_own_network=_run(tmp, "predict_own_network", {"arrays__mm_student__seed0__aaaa": _pickled(dict(
            format=2, network=dict(network="my_project.nets.MyStudent", args=None, kwargs=None),
            state=student.model.state_dict(), modalities=2, standardization=student.standardization,
            classes=student.classes, info=student.info))}),
    )
    arrays = dict(
        predict_inputs=inputs,
        predict_strings=dict(inputs, alpha=np.array([["x", "y"]] * 5)),
        predict_numeric_strings=dict(inputs, beta=inputs["beta"].astype(str)),  # "0.12..." parsed silently before
        predict_zero_rows=dict(alpha=np.zeros((0, 2)), beta=np.zeros((0, 2))),
        predict_complex=dict(inputs, alpha=inputs["alpha"] + 1j),
    )
    for name, content in arrays.items():
        np.savez(tmp / f"{name}.npz", **content)
        files[name] = tmp / f"{name}.npz"
    return files


CASES = [
    # two runs (two tasks and config hashes) in one folder: before, the first file name won without a word
    ("predict-two-runs", "exp", ["predict", "{predict_two_runs}", "--data", "{predict_inputs}"], "--config-hash"),
    ("predict-config-hash-unknown", "exp", ["predict", "{predict_two_runs}", "--data", "{predict_inputs}",
                                            "--config-hash", "cccc"], "cccc"),
    # glob characters in --method: before, '*' matched every method's files
    ("predict-method-star", "exp", [*PREDICT, "{predict_inputs}", "--method", "*"], "'*'"),
    ("predict-method-brackets", "exp", [*PREDICT, "{predict_inputs}", "--method", "[mt]*"], "'[mt]*'"),
    # input arrays: strings (a traceback, or parsed silently), no rows (a traceback), complex (imaginary part dropped)
    ("predict-alpha-strings", "exp", [*PREDICT, "{predict_strings}"], "alpha holds strings"),
    ("predict-beta-numeric-strings", "exp", [*PREDICT, "{predict_numeric_strings}"], "beta holds strings"),
    ("predict-zero-rows", "exp", [*PREDICT, "{predict_zero_rows}"], "alpha has no rows"),
    ("predict-complex", "exp", [*PREDICT, "{predict_complex}"], "alpha holds complex numbers"),
    # model files that hold pickled objects are never opened: the old format (with how to convert it) and a crafted one
    ("predict-legacy-model-file", "exp", ["predict", "{predict_legacy}", "--data", "{predict_inputs}"],
     "convert_legacy"),
    ("predict-crafted-model-file", "exp", ["predict", "{predict_crafted}", "--data", "{predict_inputs}"],
     "not opened"),
    # a network of the user's own class: only Python can name it
    ("predict-own-network", "exp", ["predict", "{predict_own_network}", "--data", "{predict_inputs}"],
     "model_class="),
]
