"""Anatomical orientation QC for CT and radiographs: does the anatomy agree with the patient axes?

A feet-first scan stored under a head-first header (or an export that mirrored the pixels) swaps right and
left, and the engines label lungs by position, so "right lung" would be the left one. Two anatomical signs
are checked on the LPS-canonical grid, and only both together raise the flag
``laterality_implausible_heart_on_right``: the heart pushes the mediastinum to the patient's left (see
:func:`heart_offset`; 9 of 10 LCTSC chest CTs here, median +0.15) and the right lung is the larger one
(about 9 in 10 people). A right lung that lost volume with the mediastinum shifted right (collapse,
resection) raises it too: the flag means "check the orientation", nothing is changed. Frontal radiographs
get the same check in the lower half of the lung fields (the heart's shadow; +0.08 median, -0.04..+0.23
on 138 Montgomery reference masks: none flagged, 105 of their mirror images flagged).
"""

from __future__ import annotations

import numpy as np

RIGHT, LEFT = 1, 2
HEART_OFFSET_LIMIT = -0.05   # heart centre this far to the patient's right (fraction of the half-distance)


def heart_offset(labels: np.ndarray) -> float | None:
    """How far the mediastinum reaches to the patient's left rather than right, in the anterior part of the
    lower half of the lungs (where the heart is): per image row that crosses both lungs, (left lung's medial
    border - midline) - (midline - right lung's medial border), over the width between the outer borders;
    median over rows. Positive: heart on the left (canonical grid, x grows to the patient's left)."""
    lungs = labels > 0
    zs = np.nonzero(lungs.any(axis=(1, 2)))[0]
    ys = np.nonzero(lungs.any(axis=(0, 2)))[0]
    if zs.size < 4 or ys.size < 4:
        return None
    y1 = ys[0] + max(1, int(0.6 * (ys[-1] - ys[0])))  # the anterior 60 %: the heart, not the spine
    rows = labels[zs[0]:(zs[0] + zs[-1]) // 2 + 1, ys[0]:y1]  # each (z, y) row: medial borders of both lungs
    return _medial_offset(rows.reshape(-1, rows.shape[-1]))


def heart_offset_2d(labels: np.ndarray) -> float | None:
    """:func:`heart_offset` for a frontal radiograph (rows top to bottom, x to the patient's left): the rows of
    the lower half of the lung fields, where the heart's shadow is."""
    ys = np.nonzero((labels > 0).any(axis=1))[0]
    if ys.size < 4:
        return None
    return _medial_offset(labels[(ys[0] + ys[-1]) // 2: ys[-1] + 1])


def _medial_offset(rows: np.ndarray) -> float | None:
    right, left = rows == RIGHT, rows == LEFT
    last = rows.shape[-1] - 1
    r_out, r_med = right.argmax(axis=-1), last - right[..., ::-1].argmax(axis=-1)
    l_med, l_out = left.argmax(axis=-1), last - left[..., ::-1].argmax(axis=-1)
    ok = (right.sum(axis=-1) >= 2) & (left.sum(axis=-1) >= 2) & (l_med > r_med)
    mid = (r_out + l_out) / 2.0
    values = ((l_med - mid) - (mid - r_med))[ok] / (l_out - r_out)[ok]
    return float(np.median(values)) if values.size >= 10 else None


def orientation_flags(labels: np.ndarray) -> tuple:
    """(flags, details) on the canonical CT grid or a radiograph's pixel grid: both signs must point to a
    mirror for the flag."""
    offset = heart_offset(labels) if labels.ndim == 3 else heart_offset_2d(labels)
    right, left = int((labels == RIGHT).sum()), int((labels == LEFT).sum())
    ratio = right / left if left else None
    flags = []
    if offset is not None and offset < HEART_OFFSET_LIMIT and ratio is not None and ratio < 1.0:
        flags.append("laterality_implausible_heart_on_right")
    return flags, {"heart_offset": offset, "right_left_ratio": ratio}  # volume (CT) or area (radiograph)
