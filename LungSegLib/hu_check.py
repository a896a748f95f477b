"""Is the intensity scale really Hounsfield units? Checked on the values the measurements use.

A wrong rescale (a NIfTI ``scl_slope`` of 2, a DICOM RescaleSlope applied twice) keeps air below -500 and
tissue near 0, so the coarse "looks like HU" test passes while every weight is wrong. Air cannot be far
below -1000 HU and a chest CT always holds air near -1000: a scale that puts many voxels below air, or
none near it, is refused (``--allow-non-hu`` overrides). Padding outside the field of view (-3024, -2048,
-32768...) is one repeated value: it is left out of these checks, and a padding value below any HU scale
is replaced by -3024, as scanners that pad with -3024 write it.
"""

from __future__ import annotations

import numpy as np

from .errors import LungSegError

PADDING_HU = -3024.0
BELOW_AIR_HU = -1150.0        # air is -1000; noise and beam hardening stay well above this
MAX_BELOW_AIR_FRACTION = 0.03  # share of (non-padding) voxels allowed below BELOW_AIR_HU
AIR_BAND = (-1100.0, -900.0)
TISSUE_PEAK_RANGE = (-170.0, 130.0)  # fat peaks near -110, muscle and blood near 40


def _sample(arr: np.ndarray) -> np.ndarray:
    step = max(1, int(round((arr.size / 2e6) ** (1 / 3)))) if arr.ndim == 3 else 1
    return arr[::step, ::step, ::step] if arr.ndim == 3 else arr


def padding_value(arr: np.ndarray):
    """The minimum when it is a padding value: below air (-1100), at least 1 % of the voxels and a gap of
    100 HU above it (padding with -1024 or -1000 is air anyway)."""
    sample = _sample(arr)
    lo = sample.min()
    if lo >= AIR_BAND[0]:
        return None
    at_lo = sample == lo
    share = float(at_lo.mean())
    if share < 0.01 or share > 0.9:
        return None
    rest = sample[~at_lo]
    return float(lo) if rest.size and float(rest.min()) - float(lo) >= 100 else None


def replace_padding_below_scale(image, lowest_hu: float, warnings: list) -> None:
    """A single padding value below any HU scale (-32768, -10000...) becomes -3024 with a warning."""
    arr = image.array
    lo = float(arr.min())
    if lo >= lowest_hu or padding_value(arr) != lo:
        return
    pad = arr == lo
    if float(arr[~pad].min()) < lowest_hu:
        return  # other values are out of range too: not padding, let the range check explain it
    out = arr.astype(np.int16 if np.issubdtype(arr.dtype, np.integer) and arr[~pad].max() < 32767 else arr.dtype,
                     copy=True)
    out[pad] = PADDING_HU
    image.array = out
    warnings.append(f"{int(pad.sum())} voxels hold the padding value {lo:g} (outside the field of view): treated as "
                    f"{PADDING_HU:g} HU, like scanners that pad with {PADDING_HU:g}")


def scale_problem(arr: np.ndarray) -> str | None:
    """Words for what is wrong with an HU scale, or None when air and tissue sit where they should."""
    sample = _sample(arr).astype(np.float32, copy=False)
    pad = padding_value(arr)
    if pad is not None:
        sample = sample[sample != pad]
    below = float((sample < BELOW_AIR_HU).mean())
    air = float(((sample >= AIR_BAND[0]) & (sample <= AIR_BAND[1])).mean())
    low = sample[sample < -400]
    low_peak = _peak(low, -3100, -400) if low.size > 100 else None
    # the lowest peak (air, or lung in a tight field of view) below air, or a large tail below air around a low
    # peak; a noisy low-dose scan has a tail, but its air peak stays at -1000
    if low_peak is not None and (low_peak < BELOW_AIR_HU or (below > MAX_BELOW_AIR_FRACTION and low_peak < -1050)):
        return (f"{100 * below:.0f} % of the voxels are below {BELOW_AIR_HU:.0f} HU (air is -1000 HU; lowest peak at "
                f"{low_peak:.0f}): the rescale slope/intercept (DICOM RescaleSlope, NIfTI scl_slope) looks wrong")
    if air < 0.002 and low_peak is not None and low_peak > AIR_BAND[1]:
        return (f"no air near -1000 HU (lowest peak at {low_peak:.0f}): the intensity scale looks compressed "
                "(rescale slope below 1?)")
    return None


def _peak(values: np.ndarray, lo: float, hi: float) -> float:
    hist, edges = np.histogram(values, bins=max(1, int((hi - lo) / 10)), range=(lo, hi))
    return float(edges[int(np.argmax(hist))] + 5.0)


def check_hu_scale(image, src: str, warnings: list) -> None:
    problem = scale_problem(image.array)
    if problem:
        scaling = image.meta.get("scaling")
        raise LungSegError(f"{src}: intensities are not plausible Hounsfield units: {problem}"
                           f"{f' ({scaling})' if scaling else ''}; pass --allow-non-hu to run anyway")


def lung_hu_flags(hu: np.ndarray, lungs: np.ndarray) -> tuple:
    """QC on the values the measurements use: (flags, details). Lung mean HU outside -1000..-200, more than
    5 % of lung voxels below -1100 HU, or a soft-tissue peak (fat or muscle, whichever dominates) outside
    -170..130 HU."""
    flags, details = [], {}
    values = hu[lungs].astype(np.float32)
    if values.size:
        mean, below = float(values.mean()), float((values < -1100).mean())
        details.update(lung_mean_hu=mean, lung_fraction_below_minus_1100=below)
        if not -1000.0 <= mean <= -200.0:
            flags.append("lung_mean_hu_implausible")
        if below > 0.05:
            flags.append("lung_hu_below_air")
    sample = _sample(hu)
    tissue = sample[(sample > -400) & (sample < 400)]
    peak = _peak(tissue, -400, 400) if tissue.size > 100 else None
    details["soft_tissue_peak_hu"] = peak
    if peak is None or not TISSUE_PEAK_RANGE[0] <= peak <= TISSUE_PEAK_RANGE[1]:
        flags.append("soft_tissue_peak_off")
    return flags, details
