"""One validation layer for the CLI, the batch script and the Slicer logic: what was read must make
sense for the engine asked for, or the user gets an error saying what was wrong and what was expected.
Odd but usable input passes with a warning (reported in measurements.json and on the Slicer status)."""

from __future__ import annotations

import numpy as np

from .errors import LungSegError
from .geometry import is_orthogonal, shear_degrees
from .hu_check import check_hu_scale, replace_padding_below_scale
from .image import CT, CXR, Image
from .limits import MAX_VOXELS

CT_ENGINES = ("hu", "ct2d", "ct3d", "ct2d+ct3d")
MIN_SLICES = 8
THIN_MM, THICK_MM = 0.5, 5.0
PLAUSIBLE_SPACING_MM = {CT: (0.05, 50.0), CXR: (0.01, 5.0)}  # beyond: a unit error, not a scanner
MAX_ASPECT = 6  # longer side / shorter side beyond which an image is not a chest (radiograph or axial CT)
PLAUSIBLE_HU = (-3100.0, 32000.0)  # beyond this no CT scanner writes HU: integer overflow or garbage


def check_image(image: Image, engine: str, params) -> list:
    """Raise :class:`LungSegError` for unusable input; return warnings for usable but odd input."""
    warnings = list(image.meta.get("warnings", []))
    src = image.meta.get("source", "input")
    arr = image.array
    if arr.size == 0:
        raise LungSegError(f"{src}: image is empty (shape {arr.shape})")
    if arr.size > MAX_VOXELS:
        raise LungSegError(f"{src}: image of shape {arr.shape} has more than the limit of {MAX_VOXELS:.3g} voxels")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise LungSegError(f"{src}: voxel type {arr.dtype} is not real-valued; expected integer or float intensities")
    if image.ndim not in (2, 3):
        raise LungSegError(f"{src}: {image.ndim}D array of shape {arr.shape}; expected a 3D CT volume or a 2D "
                           "radiograph")
    sp = np.asarray(image.spacing, float)
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise LungSegError(f"{src}: voxel spacing {tuple(image.spacing)} is not positive and finite; expected "
                           "spacing in mm > 0")
    if image.spacing_known:
        lo_mm, hi_mm = PLAUSIBLE_SPACING_MM[CXR if image.ndim == 2 else CT]
        if sp.min() < lo_mm or sp.max() > hi_mm:
            raise LungSegError(f"{src}: voxel spacing {tuple(round(float(v), 6) for v in sp)} mm is outside what "
                               f"{'radiographs' if image.ndim == 2 else 'CT scanners'} produce ({lo_mm}..{hi_mm} mm): "
                               "the header's unit is probably wrong (metres or micrometres written as mm?)")
    if image.ndim == 3 and not is_orthogonal(image.direction):
        raise LungSegError(f"{src}: voxel axes are sheared by {shear_degrees(image.direction):.1f} degrees (non-"
                           "orthogonal direction matrix), so voxel volumes are not spacing products; expected an "
                           "orthogonal grid (LungSeg's file readers resample sheared files; resample it first)")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.all():
            raise LungSegError(f"{src}: every voxel is NaN or Inf; expected finite intensities")
        if bad.any():
            warnings.append(f"{int(bad.sum())} NaN/Inf voxels replaced by the minimum value")
            arr = np.where(bad, np.min(arr[~bad]), arr)
            image.array = arr
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        raise LungSegError(f"{src}: every voxel has the value {lo:g} (constant image); expected a chest image "
                           "with contrast")
    if image.meta.get("scout"):
        kind = "/".join(image.meta.get("image_type", []))
        raise LungSegError(f"{src}: scout/localiser image (DICOM ImageType {kind}); "
                           "expected an axial CT series or a chest radiograph")
    if engine in CT_ENGINES:
        _check_ct(image, engine, params, src, lo, hi, warnings)
    elif engine == "cxr":
        if image.ndim != 2 or image.modality != CXR:
            what = "a single CT slice" if image.meta.get("single_slice") else f"a {image.ndim}D image"
            raise LungSegError(f"{src}: engine cxr needs a 2D radiograph; got {what} of shape {arr.shape} "
                               f"(use --engine ct2d, ct3d or hu for CT volumes)")
        if min(arr.shape) < 32:
            raise LungSegError(f"{src}: radiograph of {arr.shape[1]}x{arr.shape[0]} pixels is too small; "
                               "expected at least 32x32")
        h, w = arr.shape
        if max(h, w) > MAX_ASPECT * min(h, w):
            raise LungSegError(f"{src}: radiograph of {w}x{h} pixels has an aspect ratio of "
                               f"{max(h, w) / min(h, w):.0f}:1; "
                               f"a chest radiograph is roughly square (expected at most {MAX_ASPECT}:1; a strip, a "
                               "banner or a stitched image cannot be segmented)")
        if max(h, w) > 3 * min(h, w):
            warnings.append(f"radiograph aspect ratio {w}x{h} is unusual for a chest radiograph")
    return warnings


def _check_ct(image, engine, params, src, lo, hi, warnings) -> None:
    arr = image.array
    if image.meta.get("single_slice") or (image.ndim == 3 and min(arr.shape) == 1):
        raise LungSegError(f"{src}: single axial slice (shape {arr.shape}); engine {engine} needs a 3D CT volume "
                           f"with at least {MIN_SLICES} slices (give the whole series folder)")
    if image.ndim != 3 or image.modality != CT:
        raise LungSegError(f"{src}: engine {engine} needs a 3D CT volume; got a {image.ndim}D "
                           f"{image.modality} image of shape {arr.shape} (use --engine cxr for radiographs)")
    if min(arr.shape) < MIN_SLICES:
        raise LungSegError(f"{src}: volume of shape {arr.shape} has fewer than {MIN_SLICES} voxels along an axis; "
                           "expected a chest CT volume (a few slices or a scout cannot be measured)")
    fov = [n * s for n, s in zip(arr.shape[::-1], image.spacing)]  # mm along i, j, k
    axial = sorted(fov[a] for a in _axial_axes(image))
    if axial[0] > 0 and axial[1] > MAX_ASPECT * axial[0]:
        raise LungSegError(f"{src}: axial field of view {axial[1]:.0f} x {axial[0]:.0f} mm has an aspect ratio of "
                           f"{axial[1] / axial[0]:.0f}:1; a chest CT slice is roughly round (expected at most "
                           f"{MAX_ASPECT}:1)")
    dicom_modality = image.meta.get("dicom_modality", "")
    if dicom_modality not in ("", "CT") and not params.allow_non_hu:
        raise LungSegError(f"{src}: DICOM modality {dicom_modality}; engine {engine} needs CT in Hounsfield units "
                           "(pass --allow-non-hu to run anyway)")
    if not params.allow_non_hu:
        replace_padding_below_scale(image, PLAUSIBLE_HU[0], warnings)
        arr, lo = image.array, float(image.array.min())
    if (lo < PLAUSIBLE_HU[0] or hi > PLAUSIBLE_HU[1]) and not params.allow_non_hu:
        raise LungSegError(f"{src}: intensities {lo:.6g}..{hi:.6g} exceed any Hounsfield range "
                           f"({PLAUSIBLE_HU[0]:.0f}..{PLAUSIBLE_HU[1]:.0f}): "
                           f"{_overflow_cause(arr)}; pass --allow-non-hu to run anyway")
    if not params.allow_non_hu:
        check_hu_scale(image, src, warnings)  # first: it names the scaling tag when a rescale is wrong
    if not params.allow_non_hu and not looks_like_hu(arr):
        scaling = f"; {image.meta['scaling']}" if image.meta.get("scaling") else ""
        raise LungSegError(f"{src}: intensities {lo:.0f}..{hi:.0f} do not look like Hounsfield units "
                           f"({describe_range(arr)}{scaling}); expected air near -1000 HU and soft tissue near "
                           "0-60 HU; pass --allow-non-hu to run anyway")
    if engine in ("ct2d", "ct2d+ct3d"):
        _check_ct2d_spacing(image, params, warnings, engine)
    sz = float(image.spacing[2])
    if sz < THIN_MM:
        warnings.append(f"very thin slices ({sz:.2f} mm)")
    elif sz > THICK_MM:
        warnings.append(f"thick slices ({sz:.1f} mm): partial-volume effects, volumes are approximate")
    if min(arr.shape) < 48:
        warnings.append(f"small volume {arr.shape}: results are coarse")


def _axial_axes(image) -> list:
    """The two image axes closest to the patient's left-right and front-back directions."""
    d = np.abs(np.asarray(image.direction, float).reshape(3, 3))
    axes = [a for a in range(3) if int(np.argmax(d[:, a])) != 2]
    return axes if len(axes) == 2 else [0, 1]


def _check_ct2d_spacing(image, params, warnings, engine: str = "ct2d") -> None:
    """Warn when the shipped slice-wise model (alone, or the ensemble's slice member) would see slices coarser
    than it was trained on (a user's own ``--weights`` declare no training pixel size: no warning)."""
    if params.weights:
        return
    from .image import inplane_spacing_mm
    from .networks import card_named, find_card, shipped_cards, suits_spacing

    try:
        if engine == "ct2d+ct3d":
            cards = shipped_cards()
            card = find_card("ct2d+ct3d", cards=cards)
            name = f"{card['name']}, slice member {card_named(card['members']['ct2d'], cards)['name']}"
        else:
            card = find_card("ct2d", None if params.arch == "auto" else params.arch)
            name = card["name"]
    except LungSegError:
        return  # a missing model is reported by the engine with its own message
    inplane = inplane_spacing_mm(image)
    if not suits_spacing(card, inplane):
        limit = card["input"]["max_inplane_spacing_mm"]
        warnings.append(f"in-plane pixels of {inplane:.2f} mm are coarser than the {limit} mm the slice-wise "
                        f"model ({name}) was trained for; --engine ct3d (fixed 2.5 mm grid) is likely "
                        "more accurate")


def _sample(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3:
        step = max(1, int(round((arr.size / 2e6) ** (1 / 3))))  # about 2 million voxels at most
        return arr[::step, ::step, ::step]
    return arr


def looks_like_hu(arr: np.ndarray) -> bool:
    """A chest CT in HU has a clear share of voxels below -500 (air, lung) and values near 0 (tissue)."""
    sample = _sample(arr)
    lo = float(np.percentile(sample, 1))
    share_air = float((sample < -500).mean())
    share_tissue = float(((sample > -200) & (sample < 200)).mean())
    return lo < -500 and share_air > 0.02 and share_tissue > 0.02


def describe_range(arr: np.ndarray) -> str:
    """Words for what a non-HU intensity range probably is."""
    sample = _sample(arr)
    p1, p99 = (float(v) for v in np.percentile(sample, (1, 99)))
    lo, hi = float(sample.min()), float(sample.max())
    if lo >= 0 and hi <= 255:
        return f"8-bit data 0..255 (1st-99th percentile {p1:.0f}..{p99:.0f}), e.g. a screenshot or a windowed export"
    dense = sample[sample > 500]
    if lo >= 0 and hi <= 4095 and p1 < 100 and dense.size and 800 <= float(np.median(dense)) <= 1300:
        return (f"unsigned 0..4095 data with air near {p1:.0f} and tissue near 1000-1100: probably CT stored without "
                "its rescale intercept (-1024)")
    if lo >= 0 and hi <= 4095:
        return f"12-bit data 0..4095 (1st-99th percentile {p1:.0f}..{p99:.0f}), no air below -500"
    if lo >= 0 and hi > 60000 and np.issubdtype(arr.dtype, np.unsignedinteger):
        return "unsigned data with values near 65535: negative HU wrapped around (signed data read as unsigned)"
    if lo >= 0:
        return f"non-negative data {p1:.0f}..{p99:.0f} (1st-99th percentile), e.g. MR or PET"
    return f"too little air below -500 or tissue near 0 (1st-99th percentile {p1:.0f}..{p99:.0f})"



def _overflow_cause(arr: np.ndarray) -> str:
    if np.issubdtype(arr.dtype, np.unsignedinteger) and (_sample(arr) > 60000).mean() > 0.01:
        return "negative HU wrapped around (signed data stored as unsigned)"
    return "integer overflow, wrong data type or corrupt data"
