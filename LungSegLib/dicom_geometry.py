"""Where each slice of a DICOM CT series lies, from the tags that say so, and never from a guess.

ITK silently assumes 1 mm when ImagePositionPatient is missing, 1 mm pixels when PixelSpacing is 0, and
stacks gantry-tilted slices as if they were not sheared. Here the geometry is taken from the tags that
exist (ImagePositionPatient; else SliceLocation), slices missing it are left out with a warning, and a
series whose geometry cannot be known is refused with a message naming the missing tag.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from .errors import LungSegError
from .geometry import resample_orthogonal
from .limits import safe_text

IPP, IOP, SLICE_LOCATION, PIXEL_SPACING = ("ImagePositionPatient (0020,0032)", "ImageOrientationPatient (0020,0037)",
                                           "SliceLocation (0020,1041)", "PixelSpacing (0028,0030)")
MAX_MISSING_FRACTION = 0.25   # more slices than this without a position: refuse rather than drop
TILT_DEGREES = 0.5            # slice stacking direction further than this from the slice normal: a tilt
UNEVEN_FRACTION = 0.1         # slice steps differing by more than this share of the typical step: resampled


def _floats(value) -> list | None:
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def check_pixel_spacing(folder, first) -> None:
    spacing = _floats(getattr(first, "PixelSpacing", None))
    if spacing is None or len(spacing) != 2:
        raise LungSegError(f"{folder}: DICOM {PIXEL_SPACING} is missing or unreadable; the pixel size cannot be "
                           "known, so no volume can be measured; expected two positive values in mm")
    if min(spacing) <= 0:
        raise LungSegError(f"{folder}: DICOM {PIXEL_SPACING} is {spacing}; expected two positive values in mm "
                           "(a zero pixel size makes every volume meaningless)")


def check_pixel_geometry(folder, first) -> None:
    """PixelSpacing and ImageOrientationPatient of a CT slice must exist and make sense."""
    check_pixel_spacing(folder, first)
    orientation = _floats(getattr(first, "ImageOrientationPatient", None))
    if orientation is None or len(orientation) != 6:
        raise LungSegError(f"{folder}: DICOM {IOP} is missing or unreadable; the slice orientation cannot be "
                           "known; expected six direction cosines")
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    if np.linalg.norm(row) < 1e-3 or np.linalg.norm(col) < 1e-3:
        raise LungSegError(f"{folder}: DICOM {IOP} is {orientation} (a zero vector); expected two unit "
                           "direction cosines, e.g. 1\\0\\0\\0\\1\\0 for axial slices")
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    if abs(float(row @ col)) > 0.01:
        raise LungSegError(f"{folder}: DICOM {IOP} rows and columns are not perpendicular ({orientation}); "
                           "expected perpendicular direction cosines")


def slice_positions(folder, headers: list) -> tuple:
    """(headers kept, their positions along the slice normal in mm, the tag used, warnings) for the
    ``(file, dataset)`` pairs of one series. Slices without a position are left out when they are few."""
    has_ipp = [_floats(getattr(h, "ImagePositionPatient", None)) is not None for _, h in headers]
    n, n_ipp = len(headers), sum(has_ipp)
    warnings = []
    if n_ipp == n or (n_ipp >= (1 - MAX_MISSING_FRACTION) * n and n_ipp >= 2):
        if n_ipp < n:
            missing = [_name(f) for (f, _), ok in zip(headers, has_ipp) if not ok]
            warnings.append(f"{n - n_ipp} slice(s) without {IPP} left out ({', '.join(missing[:3])}"
                            f"{' ...' if len(missing) > 3 else ''}); the remaining slices keep their positions")
            headers = [fh for fh, ok in zip(headers, has_ipp) if ok]
        normal = slice_normal(headers[0][1])
        return headers, [float(normal @ np.asarray(_floats(h.ImagePositionPatient))) for _, h in headers], "IPP", \
            warnings
    locations = [_floats([getattr(h, "SliceLocation", None)]) for _, h in headers]
    if all(loc is not None for loc in locations) and n >= 2:
        warnings.append(f"{IPP} missing on {n - n_ipp} of {n} slices: slice positions and spacing taken from "
                        f"{SLICE_LOCATION}")
        return headers, [loc[0] for loc in locations], "SliceLocation", warnings
    raise LungSegError(f"{folder}: DICOM {IPP} is missing on {n - n_ipp} of {n} slices and {SLICE_LOCATION} is "
                       f"missing too, so the slice spacing cannot be known (SliceThickness is not the spacing); "
                       "expected a series whose slices carry ImagePositionPatient")


def slice_normal(ds) -> np.ndarray:
    o = np.asarray(_floats(ds.ImageOrientationPatient), float)
    n = np.cross(o[:3], o[3:])
    return n / np.linalg.norm(n)


def _even_slices(img: sitk.Image, positions: np.ndarray, step: float) -> tuple:
    """Resample a stack of unevenly spaced slices (gaps, mixed thickness) onto an even grid of ``step`` mm,
    linearly between the two neighbouring slices, so each slice stands for the thickness it really has.
    Returns (image, step, warning)."""
    arr = sitk.GetArrayViewFromImage(img)
    n = int(round((positions[-1] - positions[0]) / step)) + 1
    targets = positions[0] + step * np.arange(n)
    below = np.clip(np.searchsorted(positions, targets, side="right") - 1, 0, len(positions) - 2)
    weight = np.clip((targets - positions[below]) / (positions[below + 1] - positions[below]), 0.0, 1.0)
    out = np.empty((n,) + arr.shape[1:], arr.dtype)
    for j, (i, w) in enumerate(zip(below, weight)):
        mixed = (1.0 - w) * arr[i].astype(np.float32) + w * arr[i + 1].astype(np.float32)
        out[j] = np.round(mixed) if np.issubdtype(arr.dtype, np.integer) else mixed
    even = sitk.GetImageFromArray(out)
    even.SetSpacing(img.GetSpacing())
    even.SetOrigin(img.GetOrigin())
    even.SetDirection(img.GetDirection())
    steps = np.diff(positions)
    return even, step, (f"slices unevenly spaced ({steps.min():.2f}..{steps.max():.2f} mm): resampled from "
                        f"{len(positions)} to {n} slices on an even {step:.2f} mm grid (linear between neighbouring "
                        "slices), so volumes are measured in physical space")


def _name(f) -> str:
    return safe_text(str(f).replace("\\", "/").rsplit("/", 1)[-1], 60)


def apply_slice_geometry(img: sitk.Image, first, headers: list, positions: list, source: str) -> tuple:
    """Give the volume ITK read (slices in ``headers`` order) the geometry the tags state: slice spacing from
    the positions (median step), direction from ImageOrientationPatient, and, for a gantry tilt, the sheared
    stacking resampled to an orthogonal grid. Returns (image, warnings)."""
    if img.GetDimension() != 3 or img.GetSize()[2] != len(headers) or len(headers) < 2:
        return img, []
    o = np.asarray(_floats(first.ImageOrientationPatient), float)
    row, col = o[:3] / np.linalg.norm(o[:3]), o[3:] / np.linalg.norm(o[3:])
    normal = np.cross(row, col)
    dz = (positions[-1] - positions[0]) / (len(positions) - 1)  # the mean step keeps the stack's extent
    if dz <= 0:
        raise LungSegError(f"slices of the series share one position ({positions[0]:.2f} mm); expected slices at "
                           "distinct positions")
    warnings = []
    if source == "IPP":
        p = np.array([_floats(h.ImagePositionPatient) for _, h in headers], float)
        stack = (p[-1] - p[0]) / (len(p) - 1)     # mean physical step from one slice to the next
        origin = p[0]
    else:
        stack, origin = normal * dz, normal * positions[0]
    along = float(stack @ normal)
    tilt = math.degrees(math.atan2(float(np.linalg.norm(stack - along * normal)), abs(along)))
    sx, sy = img.GetSpacing()[:2]
    steps = np.diff(positions)
    if tilt <= TILT_DEGREES and steps.max() - steps.min() > UNEVEN_FRACTION * float(np.median(steps)):
        img, dz, note = _even_slices(img, np.asarray(positions, float), float(np.median(steps)))
        warnings.append(note)
    if tilt <= TILT_DEGREES:
        img.SetSpacing((sx, sy, dz))
        img.SetDirection(tuple(np.column_stack([row, col, normal]).ravel()))
        img.SetOrigin(tuple(float(v) for v in origin))
        return img, warnings
    img.SetSpacing((sx, sy, float(np.linalg.norm(stack))))
    img.SetDirection(tuple(np.column_stack([row, col, stack / np.linalg.norm(stack)]).ravel()))
    img.SetOrigin(tuple(float(v) for v in origin))
    size_in = img.GetSize()
    img = resample_orthogonal(img, np.column_stack([row, col, normal]))
    warnings.append(f"gantry tilt of {tilt:.1f} degrees (slices sheared): resampled from {size_in} to an "
                    f"orthogonal grid of {img.GetSize()} voxels (linear interpolation), as Slicer does for tilted "
                    "series; outputs are on that grid")
    return img, warnings
