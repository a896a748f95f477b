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


def orientation_code(image: Image) -> str:
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(list(image.direction))


def to_canonical(image: Image) -> Image:
    """Reorient a volume to LPS voxel order (x: right->left, y: anterior->posterior, z: inferior->superior).

    Only permutes/flips axes (no interpolation), so :func:`from_canonical` restores the input grid
    exactly; an oblique direction keeps its residual rotation.
    """
    if image.ndim != 3:
        return image
    oriented = sitk.DICOMOrient(image.to_sitk(), "LPS")
    out = Image.from_sitk(oriented, modality=image.modality, spacing_known=image.spacing_known)
    out.meta = dict(image.meta)
    return out


def from_canonical(labels: np.ndarray, canonical: Image, reference: Image) -> np.ndarray:
    """Bring an array computed on the canonical grid back to the reference (input) grid."""
    if reference.ndim != 3:
        return labels
    img = canonical.with_array(labels).to_sitk()
    back = sitk.DICOMOrient(img, orientation_code(reference))
    arr = sitk.GetArrayFromImage(back)
    if arr.shape != reference.array.shape:  # cannot happen for a pure permutation; guard anyway
        raise RuntimeError(f"reorientation changed shape {reference.array.shape} -> {arr.shape}")
    return arr
