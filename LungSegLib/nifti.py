"""NIfTI headers read by nibabel, and NIfTI-2 volumes (which SimpleITK cannot open) turned into SimpleITK
images, so every later check and step treats them like any other volume file.

ITK replaces a zero pixdim by 1 mm and coerces a sheared sform to orthogonal without telling; the raw
header fields here let :mod:`LungSegLib.geometry` and :mod:`LungSegLib.limits` see what the file says."""

from __future__ import annotations

import gzip
import zlib

import numpy as np
import SimpleITK as sitk

from .errors import LungSegError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])  # NIfTI world space is RAS, ITK's is LPS


def is_nifti_name(path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def raw_header(path):
    """The file's nibabel Nifti1Header or Nifti2Header, unchecked (nibabel's default check would quietly
    'fix' a zero pixdim, the very thing LungSeg must refuse), or None when it is not NIfTI."""
    import nibabel as nib

    opener = gzip.open if str(path).lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            block = f.read(nib.Nifti2Header.sizeof_hdr)
    except (OSError, EOFError, zlib.error):
        return None
    for klass in (nib.Nifti1Header, nib.Nifti2Header):
        if len(block) >= klass.sizeof_hdr and klass.may_contain_header(block):
            try:
                return klass(block[:klass.sizeof_hdr], check=False)
            except (ValueError, nib.spatialimages.HeaderDataError):
                return None
    return None


def nifti_header(path) -> dict | None:
    """The geometry fields of a NIfTI-1 or NIfTI-2 header: version, ndim, size, pixdim, qform/sform codes,
    srow, scl_slope/inter."""
    h = raw_header(path)
    return None if h is None else header_fields(h)


def header_fields(h) -> dict:
    dim = [int(v) for v in h["dim"]]
    return {"version": 2 if h.sizeof_hdr == 540 else 1, "ndim": dim[0], "size": tuple(dim[1:1 + max(0, dim[0])]),
            "pixdim": tuple(float(v) for v in h["pixdim"][1:4]), "qform_code": int(h["qform_code"]),
            "sform_code": int(h["sform_code"]),
            "srow": np.stack([h["srow_x"], h["srow_y"], h["srow_z"]]).astype(float),
            "scl_slope": float(h["scl_slope"]), "scl_inter": float(h["scl_inter"]), "dtype": h.get_data_dtype()}


def nifti_scaling(path) -> str | None:
    """'NIfTI scl_slope 2, scl_inter 0' when the header rescales the stored values (for error messages)."""
    h = nifti_header(path)
    if h is None or h["scl_slope"] in (0.0, 1.0) or not np.isfinite(h["scl_slope"]):
        return None
    return f"NIfTI scl_slope {h['scl_slope']:g}, scl_inter {h['scl_inter']:g}"


def is_nifti2(path) -> bool:
    h = nifti_header(path) if is_nifti_name(path) else None
    return h is not None and h["version"] == 2


def lps_geometry(header, n: int = 3):
    """(steps, origin) in LPS from a raw header's best affine (sform, else qform, else pixdim, as nibabel
    and ITK choose): the columns of ``steps`` are one voxel's physical steps along i, j(, k) in mm."""
    affine = header.get_best_affine()
    steps, origin = RAS_TO_LPS @ affine[:3, :3], RAS_TO_LPS @ affine[:3, 3]
    return steps[:n, :n], origin[:n]


def nifti2_volume_header(path) -> dict:
    """What :func:`LungSegLib.limits.volume_header` reports, for a NIfTI-2 file (header only)."""
    header = raw_header(path)
    h = header_fields(header)
    components = len(h["dtype"].names) if h["dtype"].names else 1  # RGB(A) datatypes are structured
    n = max(2, min(3, h["ndim"]))
    steps, _ = lps_geometry(header, n)
    spacing = np.linalg.norm(steps, axis=0)
    direction = steps / np.where(spacing > 0, spacing, 1.0)
    return {"meta": {}, "size": h["size"], "dimension": h["ndim"], "components": components,
            "pixel": str(h["dtype"]), "spacing": tuple(float(v) for v in spacing),
            "direction": tuple(float(v) for v in direction.ravel())}


def read_nifti2(path) -> sitk.Image:
    """A NIfTI-2 volume as a SimpleITK image in LPS (nibabel reads it and applies scl_slope/scl_inter).
    :func:`lps_geometry` gives spacing, direction and origin; a sheared one is kept, for
    :func:`LungSegLib.geometry.orthogonalize` to resample as for NIfTI-1."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as e:
        raise LungSegError(f"{path}: NIfTI-2 volume cannot be read ({type(e).__name__}: {str(e)[:200]}); "
                           "expected a complete NIfTI file") from None
    if data.dtype.names:
        raise LungSegError(f"{path}: NIfTI-2 volume has RGB voxels; expected a single-component (grey) CT volume")
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3):
        raise LungSegError(f"{path}: NIfTI-2 image of shape {data.shape}; expected a 3D CT volume or a 2D radiograph")
    n = data.ndim
    steps, origin = lps_geometry(raw_header(path), n)  # unchecked: nibabel's load may have 'fixed' it
    spacing = np.linalg.norm(steps, axis=0)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 1e-9):
        raise LungSegError(f"{path}: NIfTI-2 header gives voxel sizes {tuple(np.round(spacing, 6))}; expected "
                           "positive sizes in mm")
    out = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(tuple(range(n))[::-1])))
    out.SetSpacing(tuple(float(v) for v in spacing))
    out.SetDirection(tuple((steps / spacing).ravel()))
    out.SetOrigin(tuple(float(v) for v in origin))
    return out
