"""Plausibility QC: flags written to measurements.json/csv and shown in the Slicer table, never silent.

CT: hu_calibration_off, no_lung_found, lung_volume_outside_1_10_L, right_left_ratio_outside_0.6_1.8,
mask_touches_border_possibly_truncated, more_than_two_large_components, suspected_non_chest_input.
Radiograph: no_lung_found, not_two_lungs_possibly_lateral_or_non_chest, implausible_lung_area_fraction,
right_left_ratio_outside_0.6_1.8, more_than_two_large_components, lateral_view, suspected_non_chest_input.
"""

from __future__ import annotations

import numpy as np

from .hu_check import lung_hu_flags
from .laterality import orientation_flags
from .measure import hu_calibration

LARGE_FRACTION = 0.1      # a component is "large" when at least 10% of the largest one
MIN_CHEST_LUNG_L = 0.25   # less lung than this in a CT: probably not a chest (abdomen, head, limb)
MIN_CXR_AREA = 0.03       # lung area fraction below this on a radiograph: probably not a chest


def count_large_components(mask: np.ndarray, fraction: float = LARGE_FRACTION) -> int:
    """Connected components of ``mask`` at least ``fraction`` of the largest one (what an engine found
    before post-processing kept one component per side)."""
    from .postprocess import bounding_box, component_sizes, label_components

    box = bounding_box(mask, margin=0)
    if box is None:
        return 0
    lab, n = label_components(mask[box])
    sizes = component_sizes(lab, n)
    return int((sizes >= fraction * sizes.max()).sum())


def qc_ct(labels_c: np.ndarray, canonical, m: dict, raw_components: int | None = None) -> dict:
    s = m["structures"]
    both_l = s["both"]["volume_ml"] / 1000.0
    flags = []
    cal = hu_calibration(canonical.array)
    if not cal["ok"]:
        flags.append("hu_calibration_off")
    if s["both"]["voxel_count"] == 0:
        flags += ["no_lung_found", "suspected_non_chest_input"]
    else:
        if not 1.0 <= both_l <= 10.0:
            flags.append("lung_volume_outside_1_10_L")
        r, l = s["right"]["volume_ml"], s["left"]["volume_ml"]
        ratio = r / l if l else None
        if ratio is None or not 0.6 <= ratio <= 1.8:
            flags.append("right_left_ratio_outside_0.6_1.8")
        lungs = labels_c > 0
        border = (lungs[0].any() or lungs[-1].any() or lungs[:, 0].any() or lungs[:, -1].any()
                  or lungs[:, :, 0].any() or lungs[:, :, -1].any())
        if border:
            flags.append("mask_touches_border_possibly_truncated")
        if both_l < MIN_CHEST_LUNG_L:
            flags.append("suspected_non_chest_input")
    hu_flags, hu_details = lung_hu_flags(canonical.array, labels_c > 0)
    side_flags, side_details = orientation_flags(labels_c)
    flags += hu_flags + side_flags
    # post-processing only removes components, so the engine's raw count is the one that matters
    n_large = raw_components if raw_components is not None else count_large_components(labels_c > 0)
    if n_large > 2:
        flags.append("more_than_two_large_components")
    return {"flags": flags, "hu_calibration": cal, "hu_plausibility": hu_details, "orientation": side_details,
            "large_components": n_large,
            "right_left_volume_ratio": (s["right"]["volume_ml"] / s["left"]["volume_ml"]
                                        if s["left"]["volume_ml"] else None)}


def one_field_split(labels: np.ndarray) -> bool:
    """A radiograph's right and left labels that form one connected field: the two lungs of a frontal
    radiograph are apart (mediastinum between them), so one field was cut in two (a single lung, a lateral
    view, a cropped image)."""
    from .postprocess import label_components

    if not ((labels == 1).any() and (labels == 2).any()):
        return False
    lab, n = label_components(labels > 0)
    if n < 1:
        return False
    sizes = np.bincount(lab.ravel())[1:]
    biggest = lab == int(np.argmax(sizes)) + 1
    return bool((labels[biggest] == 1).any() and (labels[biggest] == 2).any())


def qc_cxr(labels: np.ndarray, m: dict, raw_components: int | None = None, image=None) -> dict:
    flags = []
    frac = m["structures"]["both"]["pixel_count"] / labels.size
    if m["structures"]["both"]["pixel_count"] == 0:
        flags += ["no_lung_found", "suspected_non_chest_input"]
    elif not (m["structures"]["right"]["pixel_count"] and m["structures"]["left"]["pixel_count"]):
        flags += ["not_two_lungs_possibly_lateral_or_non_chest", "suspected_non_chest_input"]
    elif not 0.08 <= frac <= 0.6:
        flags.append("implausible_lung_area_fraction")
        if frac < MIN_CXR_AREA:
            flags.append("suspected_non_chest_input")
    ratio = m.get("right_left_area_ratio")
    if ratio is not None and not 0.6 <= ratio <= 1.8:
        flags.append("right_left_ratio_outside_0.6_1.8")
    n_large = max(count_large_components(labels > 0), raw_components or 0)
    if n_large > 2:
        flags.append("more_than_two_large_components")
    if one_field_split(labels):
        flags.append("one_lung_field_split_into_right_left")
    side_flags, side_details = orientation_flags(labels)
    flags += side_flags
    view = str((image.meta if image is not None else {}).get("view", "")).upper()
    if view in ("LL", "RL", "LLD", "RLD", "LATERAL"):
        flags.append("lateral_view")
    return {"flags": flags, "lung_area_fraction": frac, "large_components": n_large, "orientation": side_details}
