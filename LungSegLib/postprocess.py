"""Post-processing shared by all engines: largest components, hole filling, right/left assignment.

Works on the canonical (LPS-ordered) grid, where the x index grows towards the patient's left.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

RIGHT, LEFT = 1, 2


def label_components(mask: np.ndarray, structure=None):
    """``ndimage.label`` with 16-bit labels when they suffice (a quarter of the default's memory on big
    CTs), 32-bit otherwise."""
    for dtype in (np.uint16, np.int32):
        out = np.empty(mask.shape, dtype)
        try:
            n = ndimage.label(mask, structure=structure, output=out)
            return out, n
        except RuntimeError:  # more components than 16 bits can count
            del out
    raise RuntimeError("unreachable")


def component_sizes(lab: np.ndarray, n: int, chunk: int = 8) -> np.ndarray:
    """Voxel count of labels 1..n, counted a few slices at a time (``np.bincount`` would otherwise make a
    64-bit copy of the whole label map)."""
    sizes = np.zeros(n + 1, np.int64)
    for k in range(0, lab.shape[0], chunk):
        sizes += np.bincount(lab[k:k + chunk].ravel(), minlength=n + 1)
    return sizes[1:]


def largest_components(mask: np.ndarray, keep: int = 2, min_fraction: float = 0.05) -> np.ndarray:
    """The ``keep`` largest connected components of a binary mask, dropping any under ``min_fraction``
    of the largest (stray blobs in the bowel, the table, outside air)."""
    out = np.zeros(mask.shape, bool)
    box = bounding_box(mask, margin=0)
    if box is None:
        return out
    lab, n = label_components(mask[box])
    sizes = component_sizes(lab, n)
    order = np.argsort(sizes)[::-1][:keep]
    sub = out[box]
    for i in order:
        if sizes[i] >= min_fraction * sizes[order[0]]:
            sub |= lab == i + 1
    return out


def bounding_box(mask: np.ndarray, margin: int = 1):
    """Slices of the mask's bounding box grown by ``margin`` voxels (None for an empty mask)."""
    out = []
    for axis, n in enumerate(mask.shape):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hits.size == 0:
            return None
        out.append(slice(max(0, hits[0] - margin), min(n, hits[-1] + 1 + margin)))
    return tuple(out)


def binary_opening_in_box(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    box = bounding_box(mask, margin=iterations + 1)
    out = np.zeros(mask.shape, bool)
    if box is not None:
        out[box] = ndimage.binary_opening(mask[box], iterations=iterations)
    return out


def fill_holes_slicewise(mask: np.ndarray) -> np.ndarray:
    """Fill holes (vessels, airway walls) in every slice along axis 0 (within the mask's box)."""
    out = np.zeros(mask.shape, bool)
    box = bounding_box(mask)
    if box is None:
        return out
    for k in range(box[0].start, box[0].stop):
        out[k][box[1:]] = ndimage.binary_fill_holes(mask[k][box[1:]])
    return out


def split_sides(lungs: np.ndarray, max_voxels: int = 600_000) -> np.ndarray:
    """Label a lung mask 1 = right, 2 = left (canonical grid: patient's right has the smaller x index).

    The split is found on a coarse copy of the mask (fast at any resolution); every lung voxel then takes
    the side of the nearest coarse voxel that has one.
    """
    labels = np.zeros(lungs.shape, np.uint8)
    if not lungs.any():
        return labels
    step = [1] * lungs.ndim
    while np.prod([-(-n // s) for n, s in zip(lungs.shape, step)]) > max_voxels:
        axis = int(np.argmax([n / s for n, s in zip(lungs.shape, step)]))
        step[axis] += 1
    coarse = _split_coarse(lungs[tuple(slice(None, None, s) for s in step)])
    if not coarse.any():
        coarse = _split_coarse(lungs)  # the coarse copy lost everything: tiny mask, do it at full size
        step = [1] * lungs.ndim
    idx = ndimage.distance_transform_edt(coarse == 0, return_distances=False, return_indices=True)
    nearest = coarse[tuple(idx)]
    grids = np.ix_(*[np.minimum(np.arange(n) // s, c - 1) for n, s, c in zip(lungs.shape, step, coarse.shape)])
    labels[lungs] = nearest[grids][lungs]
    return labels


def _split_coarse(lungs: np.ndarray, max_erosions: int = 12) -> np.ndarray:
    """Two components: each takes its side by centroid. One component (lungs touching, or joined by the
    airways): erode until it falls in two, then grow the two cores back inside the mask. No split
    found: cut at the centroid's x plane."""
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
