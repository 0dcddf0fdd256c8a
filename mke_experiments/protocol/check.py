"""The check bundle of a run: what ``mke-theory check --data`` and ``mke-exp check`` read.

From a run to a check: for tasks with vector inputs, every seed writes ``OUT/check/<stem>.npz`` as soon as
its teacher's pseudo labels on D_u are known (``check_arrays``: D_u as the students see it with the teacher's
output, the validation set with the teacher's probabilities on it, and the scale of T), the bundle that
``mke-theory check --data`` and ``mke-exp check`` read. ``vector_inputs`` says which splits get one;
``dense_labels`` which have per-pixel labels (their teacher output keeps a confidence map, not logits).
"""

from __future__ import annotations

import numpy as np

from mke_theory.core.split import MultimodalSplit


def vector_inputs(split: MultimodalSplit) -> bool:
    """Whether α and β of D_u are vectors (2-d arrays, as in mfeat and arrays): only then is a check bundle
    written. Images, spectrograms and clips get none: the check's neighbourhoods are balls in feature space."""
    return np.ndim(split.unlabeled_alpha) == 2 and np.ndim(split.unlabeled_beta) == 2


def dense_labels(split: MultimodalSplit) -> bool:
    """Whether the split's labels are per pixel (integer maps, as NYU Depth V2's), not one per sample."""
    return split.labels.ndim > 1 and split.labels.dtype.kind != "f"


def check_arrays(split: MultimodalSplit, pseudo_labels, teacher_probs=None, teacher_val_probs=None,
                 teacher_val_pred=None, input_noise: float = 0.0) -> dict:
    """The check bundle of one teacher, in the keys of the one bundle format (``mke_theory.core.bundle``).

    ``unlabeled_alpha``, ``unlabeled_beta``: D_u as the students see it (the split's standardised float32
    arrays); ``pseudo_labels`` (M,) the teacher's classes on it and ``teacher_probs`` (M, K) its probabilities
    when known; ``val_alpha``, ``val_beta``, ``val_labels`` with ``teacher_val_probs`` (or
    ``teacher_val_pred``) when the split has a validation set; ``unlabeled_labels`` when the split knows them
    (diagnostics only); ``input_noise``, the scale a of the students' perturbation T (x + a·mean|x|·ε), 0-d.
    """
    f32, i64 = (lambda a: np.asarray(a, np.float32)), (lambda a: np.asarray(a, np.int64))
    arrays = dict(unlabeled_alpha=f32(split.unlabeled_alpha), unlabeled_beta=f32(split.unlabeled_beta),
                  pseudo_labels=i64(pseudo_labels))
    if teacher_probs is not None:
        arrays["teacher_probs"] = f32(teacher_probs)
    if split.val_alpha is not None:
        arrays.update(val_alpha=f32(split.val_alpha), val_beta=f32(split.val_beta), val_labels=i64(split.val_labels))
        if teacher_val_probs is not None:
            arrays["teacher_val_probs"] = f32(teacher_val_probs)
        elif teacher_val_pred is not None:
            arrays["teacher_val_pred"] = i64(teacher_val_pred)
    if split.unlabeled_labels is not None:
        arrays["unlabeled_labels"] = i64(split.unlabeled_labels)
    arrays["input_noise"] = np.asarray(float(input_noise))
    return arrays
