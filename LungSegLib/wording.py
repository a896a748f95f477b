"""What a Slicer user reads: structure names like the segments, column titles with units, band limits, and
QC flags / input warnings in plain words. The identifiers (``volume_ml``, ``hu_calibration_off``) stay in
files for programs; people get these sentences."""

from __future__ import annotations

import math

from .measure import BANDS

STRUCTURE_NAMES = {"right": "Right lung", "left": "Left lung", "both": "Both lungs"}
UNIT_TEXT = {"1": "fraction", "cm2": "cm\u00b2"}
COLUMN_LABELS = {"structure": "Structure", "voxel_count": "Voxels", "volume_ml": "Volume", "weight_g": "Weight",
                 "gas_volume_ml": "Gas volume", "mean_hu": "Mean", "pixel_count": "Pixels", "area_cm2": "Area"}
QC_TEXT = {
    "hu_calibration_off": "Air and soft tissue are not where Hounsfield units put them: check the CT calibration.",
    "no_lung_found": "No lung was found.",
    "suspected_non_chest_input": "This does not look like a chest image.",
    "lung_volume_outside_1_10_L": "Total lung volume is outside 1-10 L.",
    "right_left_ratio_outside_0.6_1.8": "Right/left lung size ratio is outside 0.6-1.8.",
    "mask_touches_border_possibly_truncated": "The lungs touch the edge of the image: they may be cut off.",
    "more_than_two_large_components": "The engine found more than two large lung-like regions.",
    "not_two_lungs_possibly_lateral_or_non_chest": "Only one lung was found (a lateral view or not a chest?).",
    "implausible_lung_area_fraction": "The lungs cover an unusual share of the radiograph.",
    "lateral_view": "This is a lateral radiograph; the model was trained on frontal views.",
    "one_lung_field_split_into_right_left": "The right and left lung form one connected field: one lung field "
                                            "was cut in two (a single lung, a lateral view or a cropped image?).",
    "lung_mean_hu_implausible": "The lungs' mean value is outside -1000 to -200 HU: check the intensity scaling "
                                "(rescale slope/intercept).",
    "lung_hu_below_air": "Over 5 % of the lung is darker than air (below -1100 HU): check the intensity scaling.",
    "soft_tissue_peak_off": "Soft tissue is not near its usual value (-170 to 130 HU): check the intensity scaling.",
    "laterality_implausible_heart_on_right": "The heart lies to the patient's right and the right lung is the "
                                             "smaller one: right and left may be swapped (check the orientation).",
}


def _hu(value) -> str:
    return f"{value:g} HU"


def band_text(band: str) -> str:
    """'over-aerated (< -900 HU)' for a band name."""
    lo, hi = next((lo, hi) for name, lo, hi in BANDS if name == band)
    limits = f"< {_hu(hi)}" if math.isinf(lo) else f">= {_hu(lo)}" if math.isinf(hi) else f"{_hu(lo)} to {_hu(hi)}"
    return f"{band.replace('_', '-')} ({limits})"


def column_title(column: str, unit: str = "") -> str:
    """'Volume [mL]', 'Over-aerated volume [fraction]': the header a Slicer table shows."""
    if column.endswith(("_volume_fraction", "_weight_fraction")):
        band, kind = column.rsplit("_", 2)[0], column.rsplit("_", 2)[1]
        label = f"{band.replace('_', '-').capitalize()} {kind}"
    else:
        label = COLUMN_LABELS.get(column, column.replace("_", " ").capitalize())
    unit = UNIT_TEXT.get(unit, unit)
    return f"{label} [{unit}]" if unit and unit not in ("voxels", "pixels") else label


def column_description(column: str) -> str:
    if column.endswith(("_volume_fraction", "_weight_fraction")):
        band, kind = column.rsplit("_", 2)[0], column.rsplit("_", 2)[1]
        return f"fraction of the structure's {kind} in the {band_text(band)} band"
    return ""


def qc_sentences(flags) -> list:
    return [QC_TEXT.get(flag, flag.replace("_", " ")) for flag in flags]


def result_notes(warnings, flags) -> str:
    """One block of plain text for the panel: input warnings, then QC findings ('' when there are none)."""
    lines = [f"Input: {w[0].upper() + w[1:]}." if w and not w.endswith(".") else f"Input: {w}" for w in warnings]
    lines += [f"Check: {s}" for s in qc_sentences(flags)]
    return "\n".join(lines)
