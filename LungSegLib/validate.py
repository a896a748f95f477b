"""One validation layer for the CLI, the batch script and the Slicer logic: what was read must make
sense for the engine asked for, or the user gets an error saying what was wrong and what was expected."""

from __future__ import annotations

import numpy as np

from .errors import LungSegError
from .image import CT, CXR, Image

MAX_VOXELS = 1024 * 1024 * 1200  # ~1.26e9: a 1024x1024x1200 CT; beyond that we refuse before allocating


def check_image(image: Image, engine: str, params) -> list:
    """Raise :class:`LungSegError` for unusable input; return warnings for usable but odd input."""
    warnings = list(image.meta.get("warnings", []))
    src = image.meta.get("source", "input")
    arr = image.array
    if arr.size == 0:
        raise LungSegError(f"{src}: image is empty (shape {arr.shape})")
    if not np.issubdtype(arr.dtype, np.number):
        raise LungSegError(f"{src}: voxel type {arr.dtype} is not numeric")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.all():
            raise LungSegError(f"{src}: every voxel is NaN or Inf; expected finite intensities")
        if bad.any():
            warnings.append(f"{int(bad.sum())} NaN/Inf voxels replaced by the minimum value")
            arr = np.where(bad, np.nanmin(np.where(bad, np.nan, arr)), arr)
            image.array = arr
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        raise LungSegError(f"{src}: every voxel has the value {lo}; expected a chest image with contrast")
    if engine in ("hu", "ct2d", "ct3d"):
        if image.ndim != 3 or image.modality != CT:
            raise LungSegError(f"{src}: engine {engine} needs a 3D CT volume; got a {image.ndim}D "
                               f"{image.modality} image of shape {arr.shape} (use --engine cxr for radiographs)")
        if min(arr.shape) < 8:
            raise LungSegError(f"{src}: volume of shape {arr.shape} has fewer than 8 voxels along an axis; "
                               "expected a chest CT volume (a single slice or scout cannot be measured)")
        if not params.allow_non_hu and not looks_like_hu(arr):
            raise LungSegError(f"{src}: intensities {lo:.0f}..{hi:.0f} do not look like Hounsfield units "
                               "(expected air near -1000 HU and soft tissue near 0-60 HU); "
                               "pass --allow-non-hu to run anyway")
    elif engine == "cxr":
        if image.ndim != 2 or image.modality != CXR:
            raise LungSegError(f"{src}: engine cxr needs a 2D radiograph; got a {image.ndim}D image of shape "
                               f"{arr.shape} (use --engine ct2d, ct3d or hu for CT volumes)")
        if min(arr.shape) < 32:
            raise LungSegError(f"{src}: radiograph of {arr.shape[1]}x{arr.shape[0]} pixels is too small; "
                               "expected at least 32x32")
    return warnings


def looks_like_hu(arr: np.ndarray) -> bool:
    """A chest CT in HU has a clear share of voxels below -500 (air, lung) and values near 0 (tissue)."""
    sample = arr[::4, ::4, ::4] if arr.ndim == 3 else arr
    lo = float(np.percentile(sample, 1))
    share_air = float((sample < -500).mean())
    share_tissue = float(((sample > -200) & (sample < 200)).mean())
    return lo < -500 and share_air > 0.02 and share_tissue > 0.02
