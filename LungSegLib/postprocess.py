"""Post-processing shared by all engines: largest components, hole filling, right/left assignment.

Works on the canonical (LPS-ordered) grid, where the x index grows towards the patient's left.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

RIGHT, LEFT = 1, 2


def largest_components(mask: np.ndarray, keep: int = 2, min_fraction: float = 0.05) -> np.ndarray:
    """The ``keep`` largest connected components of a binary mask, dropping any under ``min_fraction``
    of the largest (stray blobs in the bowel, the table, outside air)."""
    lab, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(mask.shape, bool)
    sizes = np.bincount(lab.ravel())[1:]
    order = np.argsort(sizes)[::-1][:keep]
    order = [i for i in order if sizes[i] >= min_fraction * sizes[order[0]]]
    return np.isin(lab, np.asarray(order) + 1)


def fill_holes_slicewise(mask: np.ndarray) -> np.ndarray:
    """Fill holes (vessels, airway walls) in every slice along axis 0, then in 3D."""
    out = np.empty_like(mask, dtype=bool)
    for k in range(mask.shape[0]):
        out[k] = ndimage.binary_fill_holes(mask[k]) if mask[k].any() else False
    return ndimage.binary_fill_holes(out)


def split_sides(lungs: np.ndarray, max_erosions: int = 12) -> np.ndarray:
    """Label a lung mask 1 = right, 2 = left (canonical grid: patient's right has the smaller x index).

    Two components: each takes its side by centroid. One component (lungs touching, or joined by the
    airways): erode until it falls in two, then grow the two cores back inside the mask. No split
    found: cut at the centroid's x plane.
    """
    labels = np.zeros(lungs.shape, np.uint8)
    if not lungs.any():
        return labels
    core = lungs
    struct = ndimage.generate_binary_structure(lungs.ndim, 1)
    for _ in range(max_erosions + 1):
        lab, n = ndimage.label(core)
        if n >= 2:
            sizes = np.bincount(lab.ravel())[1:]
            a, b = np.argsort(sizes)[::-1][:2]
            if sizes[b] >= 0.15 * sizes[a]:
                seeds = np.zeros(lungs.shape, np.int32)
                seeds[lab == a + 1], seeds[lab == b + 1] = 1, 2
                grown = _grow_into(seeds, lungs)
                xa = np.nonzero(grown == 1)[-1].mean()
                xb = np.nonzero(grown == 2)[-1].mean()
                right_id = 1 if xa < xb else 2
                labels[grown == right_id] = RIGHT
                labels[(grown > 0) & (grown != right_id)] = LEFT
                return labels
        core = ndimage.binary_erosion(core, struct)
        if not core.any():
            break
    x_mid = np.nonzero(lungs)[-1].mean()
    xs = np.arange(lungs.shape[-1])
    labels[lungs & (xs < x_mid)] = RIGHT
    labels[lungs & (xs >= x_mid)] = LEFT
    return labels


def _grow_into(seeds: np.ndarray, mask: np.ndarray, max_steps: int = 64) -> np.ndarray:
    """Grow labelled seeds inside ``mask`` by geodesic dilation (memory-light, no distance maps);
    voxels the fronts never reach (detached bits) take the side of the nearer seed centroid in x."""
    out = seeds.copy()
    struct = ndimage.generate_binary_structure(mask.ndim, 1)
    for _ in range(max_steps):
        free = mask & (out == 0)
        if not free.any():
            break
        changed = False
        for value in (1, 2):
            ring = ndimage.binary_dilation(out == value, struct) & free
            if ring.any():
                out[ring] = value
                free &= ~ring
                changed = True
        if not changed:
            break
    rest = mask & (out == 0)
    if rest.any():
        xa, xb = (np.nonzero(seeds == v)[-1].mean() for v in (1, 2))
        xs = np.arange(mask.shape[-1])
        nearer_a = np.abs(xs - xa) <= np.abs(xs - xb)
        out[rest & nearer_a] = 1
        out[rest & ~nearer_a] = 2
    return out


def clean_labels(labels: np.ndarray, fill_holes: bool = True) -> np.ndarray:
    """Network output -> one connected, hole-free component per side; if the network put both lungs
    in one class, re-split by anatomy."""
    lungs = largest_components(labels > 0, keep=2)
    out = np.zeros(labels.shape, np.uint8)
    for side in (RIGHT, LEFT):
        part = largest_components((labels == side) & lungs, keep=1)
        if fill_holes and part.any():
            part = fill_holes_slicewise(part) if part.ndim == 3 else ndimage.binary_fill_holes(part)
        out[part & (out == 0)] = side
    # one side empty but the lungs present: the network confused sides; fall back to anatomy
    if lungs.any() and (not (out == RIGHT).any() or not (out == LEFT).any()):
        out = split_sides(out > 0 if out.any() else lungs)
    return out
