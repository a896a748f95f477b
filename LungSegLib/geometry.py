"""Voxel grids that are not rectangular boxes. A gantry-tilted CT series or a file whose direction matrix
is sheared has voxels that are parallelepipeds: counting them as boxes of spacing x spacing x spacing
misstates volumes (10 % at a 25 degree tilt). Such images are resampled to an orthogonal grid, as Slicer
does for tilted series, so every later step (engines, volumes, outputs) works in physical space."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .nifti import is_nifti2, is_nifti_name, nifti_header

SHEAR_TOLERANCE = 1e-3  # |cos| between axes below this counts as orthogonal (ITK's own tolerance is 1e-6)


def step_matrix(img: sitk.Image) -> np.ndarray:
    """3x3 matrix whose columns are the physical steps (mm, LPS) of one voxel along i, j, k."""
    d = np.asarray(img.GetDirection(), float).reshape(3, 3)
    return d @ np.diag(img.GetSpacing())


def shear_degrees(direction) -> float:
    """Largest deviation from 90 degrees between two axes of a direction matrix."""
    d = np.asarray(direction, float).reshape(3, 3)
    d = d / np.linalg.norm(d, axis=0)
    cosines = [abs(float(d[:, a] @ d[:, b])) for a, b in ((0, 1), (0, 2), (1, 2))]
    return float(np.degrees(np.arcsin(min(1.0, max(cosines)))))


def is_orthogonal(direction) -> bool:
    d = np.asarray(direction, float).reshape(3, 3)
    d = d / np.linalg.norm(d, axis=0)
    return bool(np.abs(d.T @ d - np.eye(3)).max() < SHEAR_TOLERANCE)


def nearest_rotation(direction) -> np.ndarray:
    """The orthonormal frame closest to a (sheared) direction matrix (polar decomposition)."""
    w, _, vt = np.linalg.svd(np.asarray(direction, float).reshape(3, 3))
    frame = w @ vt
    return frame if np.linalg.det(frame) > 0 or np.linalg.det(np.asarray(direction).reshape(3, 3)) < 0 else -frame


def resample_orthogonal(img: sitk.Image, frame=None, default_value: float | None = None) -> sitk.Image:
    """Resample a sheared 3D image (linear interpolation) onto the orthogonal grid ``frame`` (columns: output
    axes; default the nearest rotation) covering the whole input. Output spacing along each axis is the
    input step projected on it, so the voxel count stays about the same; outside the input the value is
    ``default_value`` (default: the image minimum, i.e. air or padding)."""
    steps = step_matrix(img)
    frame = nearest_rotation(img.GetDirection()) if frame is None else np.asarray(frame, float).reshape(3, 3)
    spacing = np.abs(np.einsum("ij,ij->j", frame, steps))
    size_in = np.asarray(img.GetSize())
    corners = np.array([[i, j, k] for i in (0, size_in[0] - 1) for j in (0, size_in[1] - 1)
                        for k in (0, size_in[2] - 1)], float)
    origin_in = np.asarray(img.GetOrigin(), float)
    points = origin_in + corners @ steps.T            # physical corners
    local = (points - origin_in) @ frame              # in the output frame
    lo, hi = local.min(axis=0), local.max(axis=0)
    size = np.maximum(1, np.floor((hi - lo) / spacing + 1e-6).astype(int) + 1)
    origin = origin_in + frame @ lo
    if default_value is None:
        default_value = float(sitk.GetArrayViewFromImage(img).min())
    out = sitk.Resample(img, [int(n) for n in size], sitk.Transform(), sitk.sitkLinear, tuple(origin),
                        tuple(float(s) for s in spacing), tuple(frame.ravel()), default_value, img.GetPixelID())
    return out


def orthogonalize(img: sitk.Image, path) -> tuple:
    """(image, warnings): a 3D image whose direction matrix is sheared is resampled to the nearest orthogonal
    grid; anything else is returned unchanged."""
    if img.GetDimension() != 3 or is_orthogonal(img.GetDirection()):
        return img, []
    angle, size = shear_degrees(img.GetDirection()), img.GetSize()
    img = resample_orthogonal(img)
    return img, [f"{path}: voxel axes are sheared by {angle:.1f} degrees (non-orthogonal direction matrix): resampled "
                 f"from {size} to an orthogonal grid of {img.GetSize()} voxels (linear interpolation) so volumes "
                 "are measured in physical space; outputs are on that grid"]


# --------------------------------------------------------------------------------------------- NIfTI
def sheared_nifti_sform(path):
    """Refuse a NIfTI whose voxel size is zero or not finite. Returns (sform columns, origin) in LPS when its
    sform is sheared (ITK coerces such a matrix to orthogonal without telling), else None."""
    from .errors import LungSegError

    h = nifti_header(path)
    if h is None:
        return None
    n = max(2, min(3, h["ndim"]))
    if h["sform_code"] > 0:
        columns = h["srow"][:n, :n]
        norms = np.linalg.norm(columns, axis=0)
        if not np.all(np.isfinite(columns)) or np.any(norms <= 1e-9):
            raise LungSegError(f"{path}: NIfTI sform (srow_x/y/z) gives voxel sizes {tuple(np.round(norms, 6))}; "
                               "expected positive sizes in mm")
        if n == 3 and not is_orthogonal(columns / norms):
            lps = np.diag([-1.0, -1.0, 1.0])              # NIfTI is RAS, ITK is LPS
            return lps @ columns, lps @ h["srow"][:3, 3]
        return None
    pixdim = np.asarray(h["pixdim"][:n], float)
    if not np.all(np.isfinite(pixdim)) or np.any(pixdim == 0):
        raise LungSegError(f"{path}: NIfTI pixdim gives voxel sizes {tuple(float(v) for v in pixdim)} and no sform; "
                           "a zero or undefined voxel size makes every volume meaningless (ITK would read it as "
                           "1 mm); expected positive sizes in mm")
    return None


def check_nifti_geometry(path, img: sitk.Image) -> sitk.Image:
    """:func:`sheared_nifti_sform` applied to the image ITK read: a sheared sform gets its shear back, so
    :func:`orthogonalize` can resample it."""
    sheared = sheared_nifti_sform(path)
    if sheared is not None and img.GetDimension() == 3:
        steps, origin = sheared
        norms = np.linalg.norm(steps, axis=0)
        img.SetSpacing(tuple(float(v) for v in norms))
        img.SetDirection(tuple((steps / norms).ravel()))
        img.SetOrigin(tuple(float(v) for v in origin))
    return img


def storage_node_safe(path) -> bool:
    """True when a volume file can go to a reader that trusts its header (Slicer's volume storage node): the
    header passes LungSeg's checks and its axes are orthogonal. Raises for a header LungSeg refuses."""
    from .limits import check_volume_header

    h = check_volume_header(path)
    if is_nifti2(path):
        return False  # ITK, hence Slicer's storage node, cannot read NIfTI-2
    if is_nifti_name(path) and sheared_nifti_sform(path) is not None:
        return False
    return h["dimension"] != 3 or is_orthogonal(h["direction"])
