"""The value type that travels between rooms: a numpy array with its physical geometry.

Array order is numpy's (z, y, x) for volumes and (y, x) for radiographs; spacing, origin and
direction are in ITK's (x, y, z) order and LPS world space, exactly as SimpleITK reports them, so
conversion to and from SimpleITK is lossless and happens only here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import SimpleITK as sitk

CT = "CT"
CXR = "CXR"


@dataclass
class Image:
    array: np.ndarray
    spacing: tuple = (1.0, 1.0, 1.0)
    origin: tuple = (0.0, 0.0, 0.0)
    direction: tuple = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    modality: str = CT
    spacing_known: bool = True
    meta: dict = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing[:3])) / 1000.0

    @property
    def pixel_area_cm2(self) -> float:
        return float(self.spacing[0] * self.spacing[1]) / 100.0

    def with_array(self, array: np.ndarray, **changes) -> "Image":
        """Same geometry, new voxels (e.g. a label map on the input grid)."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} does not match image shape {self.array.shape}")
        return replace(self, array=array, meta=dict(self.meta), **changes)

    def to_sitk(self) -> sitk.Image:
        img = sitk.GetImageFromArray(self.array)
        img.SetSpacing([float(s) for s in self.spacing])
        img.SetOrigin([float(o) for o in self.origin])
        img.SetDirection([float(d) for d in self.direction])
        return img

    @classmethod
    def from_sitk(cls, img: sitk.Image, modality: str = CT, **kwargs) -> "Image":
        return cls(
            array=sitk.GetArrayFromImage(img),
            spacing=tuple(img.GetSpacing()),
            origin=tuple(img.GetOrigin()),
            direction=tuple(img.GetDirection()),
            modality=modality,
            **kwargs,
        )

    def ijk_to_lps(self) -> np.ndarray:
        """4x4 matrix mapping (i, j, k) = (x, y, z) voxel indices to LPS millimetres."""
        n = len(self.spacing)
        m = np.eye(4)
        d = np.asarray(self.direction, float).reshape(n, n)
        m[:n, :n] = d @ np.diag(self.spacing)
        m[:n, 3] = self.origin
        return m


def _canonical_axes(direction) -> list:
    """For each ITK axis (i, j, k): the LPS world axis it runs along most and whether it runs backwards."""
    d = np.asarray(direction, float).reshape(3, 3)
    world = [int(np.argmax(np.abs(d[:, a]))) for a in range(3)]
    if len(set(world)) < 3:  # 45-degree ties: give each image axis its own world axis
        world = _assign(d)
    return [(w, bool(d[w, a] < 0)) for a, w in enumerate(world)]


def _assign(d):
    free, world = [0, 1, 2], [None] * 3
    for a in np.argsort(-np.abs(d).max(axis=0)):
        w = max(free, key=lambda w: abs(d[w, a]))
        world[a] = w
        free.remove(w)
    return world


def to_canonical(image: Image) -> Image:
    """Reorient a volume to LPS voxel order (x: right->left, y: anterior->posterior, z: inferior->superior).

    Only permutes/flips axes (no interpolation, and no copy: the array is a numpy view), so
    :func:`from_canonical` restores the input grid exactly; an oblique direction keeps its residual rotation.
    """
    if image.ndim != 3:
        return image
    axes = _canonical_axes(image.direction)
    d = np.asarray(image.direction, float).reshape(3, 3)
    origin = np.asarray(image.origin, float)
    n_ijk = image.array.shape[::-1]
    new_dir, new_spacing, order = np.zeros((3, 3)), [0.0] * 3, [0] * 3
    arr = image.array
    for a, (w, backwards) in enumerate(axes):
        column = d[:, a]
        if backwards:
            origin = origin + column * image.spacing[a] * (n_ijk[a] - 1)
            arr = np.flip(arr, axis=2 - a)
            column = -column
        new_dir[:, w], new_spacing[w], order[w] = column, image.spacing[a], a
    arr = arr.transpose([2 - order[2], 2 - order[1], 2 - order[0]])  # numpy (z, y, x) of the new grid
    out = Image(arr, spacing=tuple(new_spacing), origin=tuple(origin), direction=tuple(new_dir.ravel()),
                modality=image.modality, spacing_known=image.spacing_known, meta=dict(image.meta))
    return out


def from_canonical(labels: np.ndarray, canonical: Image, reference: Image) -> np.ndarray:
    """Bring an array computed on the canonical grid back to the reference (input) grid (a view)."""
    if reference.ndim != 3:
        return labels
    axes = _canonical_axes(reference.direction)
    order = [0] * 3
    for a, (w, _) in enumerate(axes):
        order[w] = a
    # canonical numpy axis for world axis w is 2 - w; reference numpy axis for ITK axis a is 2 - a
    inverse = [2 - axes[2 - ax][0] for ax in range(3)]
    arr = labels.transpose(inverse)
    for a, (_, backwards) in enumerate(axes):
        if backwards:
            arr = np.flip(arr, axis=2 - a)
    if arr.shape != reference.array.shape:  # cannot happen for a pure permutation; guard anyway
        raise RuntimeError(f"reorientation changed shape {reference.array.shape} -> {arr.shape}")
    return arr


def inplane_spacing_mm(image: Image) -> float | None:
    """The coarser of the two axial in-plane pixel sizes (on the LPS-canonical grid), for 3D volumes."""
    if image.ndim != 3:
        return None
    return float(max(to_canonical(image).spacing[:2]))
