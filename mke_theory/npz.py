"""Read a user's ``.npz`` file: every way it can be broken ends in one ``MKEError`` naming the file.

Shared by ``mke-theory check --data`` and the ``arrays`` task of ``mke-exp``.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from mke_theory.errors import MKEError

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
