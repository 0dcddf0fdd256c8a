"""Read a user's ``.npz`` file: every way it can be broken ends in one ``MKEError`` naming the file.

Shared by ``mke-theory check --data`` and the ``arrays`` task of ``mke-exp``.
"""

from __future__ import annotations

import difflib
import unicodedata
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from mke_theory.core.errors import MKEError

_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, RuntimeError)
_FIX = "write it again with numpy.savez(path, key=array, ...)"


def load_npz(path, what: str = ".npz file") -> dict[str, np.ndarray]:
    """All arrays of the npz at ``path`` (no pickles), or an ``MKEError`` naming it and the fix."""
    path = Path(path)
    if path.is_dir():
        raise MKEError(f"{path} is a folder; pass the {what} itself")
    if not path.is_file():
        raise MKEError(f"{path}: no such file; pass the path of the {what}")
    if path.stat().st_size == 0:
        raise MKEError(f"{path} is empty (0 bytes), not a {what}; {_FIX}")
    try:
        data = np.load(path, allow_pickle=False)
    except _READ_ERRORS as e:
        raise MKEError(f"{path} is not a readable {what} ({type(e).__name__}: {e}); {_FIX}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise MKEError(f"{path} holds a single .npy array, not a {what} of named arrays; {_FIX}")
    try:
        with data:
            return {k: data[k] for k in data.files}
    except _READ_ERRORS as e:
        raise MKEError(f"{path}: an array of the {what} cannot be read ({type(e).__name__}: {e}); "
                       f"{_FIX} with plain numeric arrays") from None


# ---- the bundle's keys: one list for ``mke-exp run arrays --data`` and ``mke-theory check --data`` --------------
# (documented in mke_experiments/tasks/arrays.py and docs/experiments.md, "Your own data")
LABELED = ("labeled_alpha", "labels")  # D_l: optional when the bundle carries the teacher's output on D_u
REQUIRED = LABELED + ("unlabeled_alpha", "unlabeled_beta", "test_alpha", "test_beta", "test_labels")
OPTIONAL = ("unlabeled_labels", "val_alpha", "val_beta", "val_labels")
TEACHER = ("pseudo_labels", "teacher_probs", "teacher_test_pred", "teacher_test_probs",  # your own teacher's output
           "teacher_val_pred", "teacher_val_probs")  # ... on the validation set: read by mke-theory check
KEYS = REQUIRED + OPTIONAL + TEACHER
LABEL_KEYS = ("labels", "val_labels", "test_labels", "unlabeled_labels", "pseudo_labels", "teacher_test_pred",
              "teacher_val_pred")
OLD_CHECK_KEYS = ("alpha", "beta", "pseudo_labels", "labels")  # mke-theory check's former format (deprecated)
CHECK_KEYS = KEYS + ("input_noise",) + OLD_CHECK_KEYS  # what mke-theory check --data reads (a run's check bundle)
# an unknown key holding one of these words is meant as the teacher's output or labels: never ignored
_MEANINGFUL = ("teacher", "pseudo", "prob", "pred", "logit", "label", "alpha", "beta", "soft")


def check_keys(arrays: dict, known=KEYS, source: str = "the bundle") -> None:
    """Refuse a key of ``arrays`` that is not in ``known`` but close to one (a typo: ``teacher_prob``) or that
    names labels or teacher output (``logits``): one ``MKEError`` naming each with the closest known key.
    Other unknown keys (ids, class names kept beside the data) are ignored with a warning naming them."""
    unknown = [k for k in arrays if k not in known]
    refused, ignored = [], []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if close:
            refused.append(f"{key} (did you mean {close[0]}?)")
        elif any(word in key.lower() for word in _MEANINGFUL):
            refused.append(key)
        else:
            ignored.append(key)
    if refused:
        raise MKEError(f"{source}: unknown key(s) {', '.join(refused)}; rename them to the bundle's keys "
                       f"({', '.join(known)}): an unknown key is never read, so a misspelt teacher output would "
                       "train a teacher instead")
    if ignored:
        warnings.warn(f"{source}: key(s) {', '.join(ignored)} are not bundle keys and are ignored", stacklevel=2)


def feature_array(source: str, key: str, values) -> np.ndarray:
    """``values`` as a 2-d array of real numbers (a 1-d array becomes one feature), or one ``MKEError``
    naming ``key``: complex numbers and non-numeric values are refused. NaN is the caller's to check."""
    v = np.asarray(values)
    if np.issubdtype(v.dtype, np.complexfloating):
        raise MKEError(f"{source}: {key} holds complex numbers; save real features (e.g. the magnitude "
                       "or the real and imaginary parts side by side)")
    if not np.issubdtype(v.dtype, np.number) and v.dtype != bool:
        raise MKEError(f"{source}: {key} holds {v.dtype} values, not numbers; save numeric features")
    return v[:, None] if v.ndim == 1 else v


def check_probs(source: str, key: str, values, rows: int, part: str, n_classes: int | None = None) -> np.ndarray:
    """The teacher's class probabilities ``key`` as float32 rows renormalised to sum 1, or one ``MKEError``:
    (n, K) shape (K = ``n_classes`` when known), finite values in [0, 1], rows summing to 1 (±1e-3), and
    ``rows`` rows, one per sample of ``part``. The one check of ``mke-exp run arrays`` and ``mke-theory check``."""
    v = np.asarray(values)
    if v.ndim != 2 or (n_classes is not None and v.shape[1] != n_classes):
        k = "K" if n_classes is None else n_classes
        raise MKEError(f"{source}: {key} must be (n, {k}), one column per class in the order of the sorted label "
                       f"values, got shape {v.shape}")
    if v.dtype.kind not in "fiu" or not np.all(np.isfinite(v)) or v.min() < 0 or v.max() > 1:
        raise MKEError(f"{source}: {key} must hold probabilities in [0, 1] (finite numbers)")
    sums = v.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        bad = int(np.flatnonzero(~np.isclose(sums, 1.0, atol=1e-3))[0])
        raise MKEError(f"{source}: row {bad} of {key} sums to {sums[bad]:.4g}, not 1: the rows must sum to 1; save "
                       "the softmax probabilities (or the teacher's classes instead)")
    if len(v) != rows:
        raise MKEError(f"{source}: {key} has {len(v)} rows but {part} has {rows}; one per sample")
    return (v / sums[:, None]).astype(np.float32)


def _listing(values, n: int = 10) -> str:
    values = list(values)
    return ", ".join(map(str, values[:n])) + (f" … ({len(values)} in all)" if len(values) > n else "")


def _shown(value) -> str:
    """A label as a message shows it: its repr, and for a non-ASCII string its escaped form as well, so that
    look-alikes ("café" as one code point or as e + a combining accent) differ on screen."""
    text = repr(value)
    return text if text.isascii() else f"{text} = {ascii(value)}"  # repr escapes \u200b, not a combining accent


def normalize_label(value: str) -> str:
    """A string label as the library compares it: Unicode NFC, surrounding whitespace stripped."""
    return unicodedata.normalize("NFC", value).strip()


def _string_labels(source: str, key: str, v: np.ndarray) -> np.ndarray:
    """The string labels ``v`` normalised (``normalize_label``), or an ``MKEError`` naming an empty one."""
    raw = v.astype(str)
    out = np.array([normalize_label(x) for x in raw.tolist()], dtype=str).reshape(raw.shape)
    empty = np.flatnonzero(out == "")
    if empty.size:
        raise MKEError(f"{source}: {key} hold(s) an empty label (row {int(empty[0])}: {str(raw[empty[0]])!r}); "
                       "every label must name a class")
    return out


def encode_labels(arrays: dict, keys=LABEL_KEYS, source: str = "the bundle", allow_missing: bool = False,
                  reference=None) -> tuple[dict, list]:
    """Class indices 0 … K−1 for the label arrays ``keys`` of ``arrays``, and the K original values.

    Labels are integers (or whole floats) or strings, never both; strings are compared in Unicode NFC with
    surrounding whitespace stripped (``normalize_label``), and an empty one is refused. The classes are the
    sorted distinct values of the ``reference`` keys that ``arrays`` holds (D_l's ``labels``, say; None or
    none present: all ``keys``), and every other key's values must be among them: a label of another class is
    an ``MKEError`` naming the key and the values. Integer classes must not skip a value between their
    smallest and largest, unless ``allow_missing``: then the skipped values stay classes without samples
    (e.g. 1, 2, 4 → 4 classes 1, 2, 3, 4). Returns ({key: int64 indices}, classes as JSON-able ints or strings).
    """
    present = [k for k in keys if arrays.get(k) is not None]
    kinds = {}
    for k in present:
        v = np.asarray(arrays[k])
        if v.ndim != 1:
            raise MKEError(f"{source}: {k} must be a 1-d array of class labels, one per sample, got shape {v.shape}")
        if v.dtype.kind in "USO":
            if v.dtype.kind == "O" and not all(isinstance(x, str) for x in v):
                raise MKEError(f"{source}: {k} holds Python objects; save integer or string class labels")
            kinds[k] = "string"
        elif v.dtype.kind in "iu" or (v.dtype.kind == "f" and np.all(np.isfinite(v)) and np.all(v == np.round(v))):
            kinds[k] = "integer"
        else:
            what = "bool" if v.dtype.kind == "b" else f"{v.dtype} values that are not whole numbers"
            raise MKEError(f"{source}: {k} holds {what}; labels must be integers or strings (class names)")
    if len(set(kinds.values())) > 1:
        strings = [k for k, kind in kinds.items() if kind == "string"]
        ints = [k for k, kind in kinds.items() if kind == "integer"]
        raise MKEError(f"{source}: {', '.join(strings)} hold(s) string labels but {', '.join(ints)} integer ones; "
                       "use the same label values in every key")
    if not present:
        return {}, []
    ref = [k for k in (reference or ()) if k in present] or present
    if kinds[present[0]] == "string":
        values = {k: _string_labels(source, k, np.asarray(arrays[k])) for k in present}
        classes = sorted(set().union(*(set(values[k].tolist()) for k in ref)))
    else:
        values = {k: np.asarray(arrays[k]).astype(np.int64) for k in present}
        for k, v in values.items():
            if v.size and v.min() < 0:
                raise MKEError(f"{source}: {k} holds the negative label {int(v.min())}; labels must be >= 0 "
                               "(−1 often means 'no label': drop those samples or move them to D_u)")
        found = sorted(set().union(*(set(values[k].tolist()) for k in ref)))
        classes = list(range(found[0], found[-1] + 1)) if found else []
        missing = sorted(set(classes) - set(found))
        if missing and not allow_missing:
            spans = "; ".join(f"{k}: {int(values[k].min())}…{int(values[k].max())}" for k in ref if values[k].size)
            raise MKEError(f"{source}: the integer labels skip class(es) {_listing(missing)} between {found[0]} and "
                           f"{found[-1]} ({spans}); give every class a sample, or pass --set "
                           "data.allow_missing_classes=true to keep the skipped values as classes without samples")
    _refuse_other_classes(source, values, classes, ref)
    index = np.asarray(classes)
    encoded = {k: np.searchsorted(index, v).astype(np.int64) if index.size else v.astype(np.int64)
               for k, v in values.items()}
    return encoded, [c if isinstance(c, str) else int(c) for c in classes]


def _refuse_other_classes(source: str, values: dict, classes: list, ref: list) -> None:
    """An ``MKEError`` for the first key of ``values`` holding a value that is not one of ``classes`` (those of
    the ``ref`` keys): the class set never grows by a teacher's prediction or a test label D_l lacks."""
    known = set(classes)
    for k, v in values.items():
        if k in ref:
            continue
        other = sorted(set(v.tolist()) - known)
        if other:
            note = (" (labels are compared in Unicode NFC with surrounding spaces stripped)"
                    if isinstance(other[0], str) else "")
            raise MKEError(f"{source}: {k} hold(s) the value(s) {_listing(map(_shown, other))}, not class(es) of "
                           f"{' and '.join(ref)} ({_listing(map(_shown, classes))}){note}; every label must be one "
                           "of those classes")
