"""The classical HU engine: no model, a few seconds, and a source of pseudo-labels.

Air below -320 HU inside the body -> drop air that touches the slice border (outside air) -> keep the
large 3D components (lungs, not bowel gas) -> remove the trachea and main bronchi by region growing
from a seed in the trachea -> split right/left -> fill holes (vessels). Dense lung (edema,
consolidation) is *not* found by a threshold; the network engines exist for that.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import CancelledError
from .postprocess import (binary_opening_in_box, bounding_box, fill_holes_slicewise, label_components,
                          largest_components, split_sides)

LUNG_AIR_HU = -320.0
MIN_LUNG_ML = 30.0


def _inplane_structure():
    s = np.zeros((3, 3, 3), bool)
    s[1] = ndimage.generate_binary_structure(2, 1)
    return s


def outside_air_removed(air: np.ndarray) -> np.ndarray:
    """Air regions of each axial slice that do not touch the slice border."""
    lab, n = label_components(air, structure=_inplane_structure())
    if n == 0:
        return air
    border = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(),
                                       lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    return air & ~np.isin(lab, border[border > 0])


def find_trachea_seed(cand: np.ndarray, spacing, hu: np.ndarray | None = None) -> tuple | None:
    """A voxel in the trachea: in the top slices, a small roundish air blob near the centre line."""
    zs = np.nonzero(cand.any(axis=(1, 2)))[0]
    if zs.size == 0:
        return None
    px_cm2 = spacing[0] * spacing[1] / 100.0
    for z in zs[::-1][: max(3, int(60 / spacing[2]))]:  # search the top ~6 cm of the air column
        lab, n = ndimage.label(cand[z])
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())[1:] * px_cm2
        coms = ndimage.center_of_mass(cand[z], lab, range(1, n + 1))
        mid = cand.shape[2] / 2.0
        best = None
        for i, (area, (cy, cx)) in enumerate(zip(sizes, coms)):
            if 0.5 <= area <= 8.0 and abs(cx - mid) < 0.2 * cand.shape[2]:
                if best is None or abs(cx - mid) < abs(best[2] - mid):
                    best = (z, cy, cx, i + 1)
        if best is not None:
            z, _, _, lbl = best
            ys, xs = np.nonzero(lab == lbl)
            darkest = int(np.argmin(hu[z, ys, xs])) if hu is not None else len(ys) // 2
            return int(z), int(ys[darkest]), int(xs[darkest])
    return None


def airways(hu: np.ndarray, cand: np.ndarray, spacing, max_ml: float = 250.0) -> np.ndarray:
    """Trachea + main bronchi by region growing from the trachea seed; the threshold is lowered until
    the grown tree stays under ``max_ml`` (no leak into the parenchyma)."""
    seed = find_trachea_seed(cand, spacing, hu)
    empty = np.zeros(cand.shape, bool)
    if seed is None:
        return empty
    voxel_ml = float(np.prod(spacing)) / 1000.0
    box = bounding_box(cand, margin=1)
    sub_cand, sub_hu = cand[box], hu[box]
    local_seed = tuple(int(c - b.start) for c, b in zip(seed, box))
    for threshold in (-800, -850, -900, -930, -950, -970, -990):
        grown_src = sub_cand & (sub_hu < threshold)
        if not grown_src[local_seed]:
            continue
        lab, _ = label_components(grown_src)
        tree = lab == lab[local_seed]
        if tree.sum() * voxel_ml <= max_ml:
            empty[box] = ndimage.binary_dilation(tree, iterations=1) & sub_cand
            return empty
    return empty


def segment_hu(hu: np.ndarray, spacing, progress=None, info: dict | None = None) -> np.ndarray:
    """Labels (0/1 right/2 left) for a canonical (z, y, x) HU volume with (x, y, z) spacing in mm.
    ``info`` (optional) receives ``large_components``: air components inside the body at least 10% of the
    largest, before the two largest are kept (for the QC flag)."""
    def report(fraction, message):  # between stages: the callback's False stops here
        if progress is not None and progress(fraction, message) is False:
            raise CancelledError("cancelled by the user")

    report(0.1, "HU threshold")
    air = hu < LUNG_AIR_HU
    cand = outside_air_removed(air)
    report(0.3, "lung components")
    if info is not None:
        from .qc import count_large_components

        info["large_components"] = count_large_components(cand, 0.1)
    cand = largest_components(cand, keep=2, min_fraction=0.1)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if cand.sum() * voxel_ml < MIN_LUNG_ML:
        return np.zeros(hu.shape, np.uint8)
    report(0.5, "airways")
    cand &= ~airways(hu, cand, spacing)
    report(0.6, "smoothing")
    cand = binary_opening_in_box(cand, iterations=1)
    cand = largest_components(cand, keep=2, min_fraction=0.1)
    report(0.7, "right/left split")
    labels = split_sides(cand)
    out = np.zeros(hu.shape, np.uint8)
    report(0.85, "filling vessels")
    for side in (1, 2):
        part = largest_components(labels == side, keep=1)
        if part.any():
            out[fill_holes_slicewise(part) & (out == 0)] = side
    return out
