"""Image resizing as ``cv2.resize`` does it, with or without OpenCV.

``resize`` calls OpenCV (INTER_LINEAR / INTER_NEAREST) when it is installed, else ``_resize_numpy``, a numpy
implementation of the same sampling (no antialiasing; uint8 results may differ by one grey level from OpenCV's
fixed-point arithmetic). ``_cv2`` is the one place that asks whether OpenCV is there: the NYU Depth V2 prepare
records its answer in the manifest.
"""

from __future__ import annotations

import numpy as np


def _cv2():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def _source_coords(n_out: int, n_in: int, linear: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's sampling: nearest ``floor(d * in / out)``; linear ``(d + 0.5) * in / out - 0.5``, clamped."""
    scale = n_in / n_out
    d = np.arange(n_out)
    if not linear:
        lo = np.minimum(np.floor(d * scale).astype(np.int64), n_in - 1)
        return lo, lo, np.zeros(n_out)
    x = (d + 0.5) * scale - 0.5
    lo = np.floor(x).astype(np.int64)
    w = x - lo
    w[lo < 0], lo[lo < 0] = 0.0, 0
    edge = lo >= n_in - 1
    w[edge], lo[edge] = 0.0, n_in - 1
    return lo, np.minimum(lo + 1, n_in - 1), w


def _resize_numpy(array: np.ndarray, size: tuple[int, int], linear: bool) -> np.ndarray:
    """(h, w[, c]) → (H, W[, c]), the same sampling as cv2.resize INTER_LINEAR / INTER_NEAREST (no antialiasing)."""
    (y0, y1, wy), (x0, x1, wx) = (_source_coords(size[0], array.shape[0], linear),
                                  _source_coords(size[1], array.shape[1], linear))
    if not linear:
        return array[y0][:, x0]
    a = array.astype(np.float64)
    wy = wy.reshape((-1, 1) + (1,) * (a.ndim - 2))
    wx = wx.reshape((1, -1) + (1,) * (a.ndim - 2))
    rows = a[y0] * (1 - wy) + a[y1] * wy  # (H, w[, c])
    out = rows[:, x0] * (1 - wx) + rows[:, x1] * wx  # (H, W[, c])
    if array.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(array.dtype)


def resize(array: np.ndarray, size: tuple[int, int], linear: bool) -> np.ndarray:
    """Resize an (h, w) or (h, w, c) image to ``size`` = (H, W): bilinear or nearest, as cv2.resize.

    Uses OpenCV (INTER_LINEAR / INTER_NEAREST) when installed, else a numpy implementation of the same
    sampling (uint8 results may differ by one grey level from OpenCV's fixed-point arithmetic).
    """
    size = (int(size[0]), int(size[1]))
    if array.shape[:2] == size:
        return array.copy()
    cv2 = _cv2()
    if cv2 is None:
        return _resize_numpy(array, size, linear)
    flag = cv2.INTER_LINEAR if linear else cv2.INTER_NEAREST
    if array.dtype == np.uint16 and not linear:  # cv2 resizes uint16 too, but keep labels exact and simple
        return _resize_numpy(array, size, linear)
    return cv2.resize(array, (size[1], size[0]), interpolation=flag)
