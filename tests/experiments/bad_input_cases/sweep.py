"""Bad input to ``mke-exp sweep`` (issue 24, point 1): sizes of D_l the data cannot give, tasks whose D_l cannot
be subsampled, a bundle whose teacher is given, and a --set that fights --labeled. Each ends in one sentence
naming the option or key, before anything trains."""

from __future__ import annotations

import numpy as np

from mke_experiments.testing.bundles import write_bundle
from mke_theory.generators import gaussian_mixture

SWEEP = ("--epochs", "1", "--seeds", "0,1", "--device", "cpu")
SPLIT = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)


def make_files(tmp):
    return {"sweep_bundle": write_bundle(tmp / "sweep_bundle.npz", SPLIT),
            "sweep_own_teacher": write_bundle(tmp / "sweep_own_teacher.npz", SPLIT,
                                              teacher_probs=np.eye(3)[SPLIT.unlabeled_labels] * 0.7 + 0.1)}


CASES = [
    ("sweep-size-above-d_l", "exp", ["sweep", "arrays", "--data", "{sweep_bundle}", "--labeled", "10,40", *SWEEP],
     "--labeled 40: data.n_labeled=40 must lie between the 3 classes and the 30 samples of D_l"),
    ("sweep-size-below-classes", "exp", ["sweep", "arrays", "--data", "{sweep_bundle}", "--labeled", "2,10", *SWEEP],
     "--labeled 2: data.n_labeled=2 must lie between the 3 classes"),
    ("sweep-mfeat-too-many", "exp", ["sweep", "mfeat", "--labeled", "20,1500", *SWEEP],
     "--labeled 1500: data.n_labeled"),
    ("sweep-sizes-not-numbers", "exp", ["sweep", "mfeat", "--labeled", "20,many", *SWEEP],
     "distinct whole numbers of labeled samples"),
    ("sweep-sizes-repeated", "exp", ["sweep", "mfeat", "--labeled", "20,20", *SWEEP],
     "distinct whole numbers of labeled samples"),
    ("sweep-task-without-n_labeled", "exp", ["sweep", "ravdess", "--labeled", "20,60", *SWEEP],
     "task ravdess has no data.n_labeled"),
    ("sweep-own-teacher", "exp", ["sweep", "arrays", "--data", "{sweep_own_teacher}", "--labeled", "10,20", *SWEEP],
     "carries its own teacher output"),
    ("sweep-set-n_labeled", "exp", ["sweep", "mfeat", "--labeled", "20,60", "--set", "data.n_labeled=30", *SWEEP],
     "--set data.n_labeled is what --labeled sweeps"),
]
