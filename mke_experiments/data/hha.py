"""HHA encoding of a depth image (Gupta et al., ECCV 2014), compact version: disparity, height, angle.

``encode_hha`` turns an (H, W) depth in metres into (3, H, W) uint8 channels through the camera's point cloud;
``scaled_intrinsics`` gives the NYU Depth V2 colour camera (Kinect, 640×480) for an image resized to (H, W),
the default camera of ``encode_hha``. The stated simplifications (gravity along the camera's y axis, normals
from summed tangent cross products) are listed in ``encode_hha``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mke_theory.core.errors import MKEError

# Colour camera of the Kinect at 640×480 (Depth2HHA-python getHHA.py, from the NYU toolbox): fx, fy, cx, cy.
NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)
NYU_SIZE = (480, 640)  # (H, W) of the images the intrinsics belong to

_HHA_MIN_DEPTH_CM = 100.0  # getHHA: pc[:, :, 2] = max(pc[:, :, 2], 100) before the disparity
_HHA_DEFAULT_FLOOR_CM = -130.0  # getHHA: when no point lies 90 cm below the camera, assume the floor at 130 cm
_HHA_NORMAL_RADIUS = 2  # normals from the tangents summed over a (2r+1)² window of valid pixels


def scaled_intrinsics(size: tuple[int, int]) -> tuple[float, float, float, float]:
    """NYU colour intrinsics (fx, fy, cx, cy) for images resized from 480×640 to ``size`` = (H, W).

    Focal lengths scale with the size; the principal point maps pixel centres: ``c' = (c + 0.5) s - 0.5``.
    """
    sy, sx = size[0] / NYU_SIZE[0], size[1] / NYU_SIZE[1]
    fx, fy, cx, cy = NYU_INTRINSICS
    return fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


def _window_sum(a: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1)×(2r+1) window around every pixel of (H, W, ...) ``a``, zeros beyond the border."""
    pad = [(radius + 1, radius), (radius + 1, radius)] + [(0, 0)] * (a.ndim - 2)
    c = np.pad(a, pad).cumsum(0).cumsum(1)
    k = 2 * radius + 1
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def encode_hha(depth: np.ndarray, intrinsics: Sequence[float] | None = None,
        missing: np.ndarray | None = None) -> np.ndarray:
    """HHA encoding of a depth image (Gupta et al., ECCV 2014), compact version; (3, H, W) uint8.

    Channels, in the order of the name (as Depth2HHA-python ``getHHA.py``'s PNG reads in RGB order):

    0. horizontal disparity ``31000 / depth_cm``, depth first raised to 100 cm, so at most 255 after clipping;
    1. height above the ground in cm: ``h = -Y`` relative to the lowest valid point (when that lies less than
       90 cm below the camera, the ground is put 130 cm below it, as getHHA does);
    2. angle between the surface normal and "up" in degrees, plus 38 (``angle + 128 - 90``); 180° where
       no normal can be computed.

    Values are rounded (``np.rint``) and clipped to 0..255.

    Simplifications (stated, not hidden): gravity is taken to be the camera's y axis (image rows point
    down, so "up" is (0, -1, 0)); Gupta et al. estimate it iteratively from the normals. Normals are the
    cross products of the point cloud's central-difference tangents summed over a 5×5 window of valid
    pixels and made to face the camera, instead of local plane fits.

    Parameters
    ----------
    depth : (H, W) depth in metres.
    intrinsics : (fx, fy, cx, cy) in pixels of this image; default ``scaled_intrinsics(depth.shape)``.
    missing : (H, W) bool, pixels without a measurement (``rawDepths == 0``); they take no part in the
        ground estimate or the normals.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise MKEError(f"encode_hha: depth must be (H, W), not {depth.shape}")
    height, width = depth.shape
    fx, fy, cx, cy = scaled_intrinsics(depth.shape) if intrinsics is None else (float(v) for v in intrinsics)
    z = depth * 100.0  # (H, W) cm
    valid = np.isfinite(z) & (z > 0)
    if missing is not None:
        valid &= ~np.asarray(missing, dtype=bool)
    z = np.where(np.isfinite(z), z, 0.0)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    points = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)  # (H, W, 3) camera frame, cm, y down
    up = np.array([0.0, -1.0, 0.0])  # the simplification: gravity along the camera's y axis

    height_cm = points @ up  # (H, W) height above the camera
    floor = float(height_cm[valid].min()) if valid.any() else _HHA_DEFAULT_FLOOR_CM
    if floor > -90.0:
        floor = _HHA_DEFAULT_FLOOR_CM
    above_ground = height_cm - floor  # (H, W)

    # Tangents need two rows and two columns; degenerate images get no normals.
    if height >= 2 and width >= 2:
        du = np.gradient(points, axis=1)  # (H, W, 3)
        dv = np.gradient(points, axis=0)
        cross = np.cross(du, dv)  # (H, W, 3)
        ok = valid.copy()  # a tangent is trusted when the pixel and its 4 neighbours are valid
        ok[:, 1:] &= valid[:, :-1]
        ok[:, :-1] &= valid[:, 1:]
        ok[1:] &= valid[:-1]
        ok[:-1] &= valid[1:]
        cross = np.where(ok[..., None], cross, 0.0)
        cross /= np.maximum(np.linalg.norm(cross, axis=-1, keepdims=True), 1e-12)  # equal weight per pixel
        normal = _window_sum(cross, _HHA_NORMAL_RADIUS)  # (H, W, 3)
        norm = np.linalg.norm(normal, axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            normal = np.where(norm > 1e-6, normal / norm, np.nan)
        facing = np.sum(normal * points, axis=-1) > 0  # normals point away from the camera there: flip
        normal[facing] *= -1
        with np.errstate(invalid="ignore"):
            angle = np.degrees(np.arccos(np.clip(normal @ up, -1.0, 1.0)))  # (H, W), NaN where no normal
        angle[~valid] = np.nan
    else:
        angle = np.full(depth.shape, np.nan)
    angle = np.where(np.isnan(angle), 180.0, angle)

    encoded = np.stack([31000.0 / np.maximum(z, _HHA_MIN_DEPTH_CM), above_ground, angle + 128.0 - 90.0])
    return np.clip(np.rint(encoded), 0, 255).astype(np.uint8)  # (3, H, W)
