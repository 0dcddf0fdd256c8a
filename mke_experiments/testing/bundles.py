"""A small npz bundle for the ``arrays`` task, from a synthetic split with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mke_theory.generators import gaussian_mixture


def write_bundle(path: str | Path, split=None, **changes) -> Path:
    """Write ``split`` (default: a 3-class Gaussian mixture, 30 labeled / 120 unlabeled / 60 test) as a
    bundle; ``changes`` replace or add keys (``None`` drops one), e.g. ``pseudo_labels=...`` for your own
    teacher's output (the keys: ``mke_theory.core.bundle.KEYS``), or bad values for tests of bad bundles."""
    split = split or gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
    arrays = dict(labeled_alpha=split.labeled_alpha, labels=split.labels, unlabeled_alpha=split.unlabeled_alpha,
                  unlabeled_beta=split.unlabeled_beta, unlabeled_labels=split.unlabeled_labels,
                  test_alpha=split.test_alpha, test_beta=split.test_beta, test_labels=split.test_labels)
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return Path(path)
