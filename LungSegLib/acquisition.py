"""CT acquisition variation for training: how the same chest looks on other scanners and set-ups.

Noise levels, soft and sharp reconstruction kernels, thick slices, a truncated field of view, the table
and the arms in the field. Used by ``pathology.RandPathologyd`` after the simulated pathology; arrays are
HU on the canonical (z, y, x) grid with ``spacing`` in mm in the same order, a slice as (1, y, x).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import LungSegError

AIR_HU = -1024.0
EFFECTS = ("table", "arms", "fov", "thick", "kernel", "noise")


def acquisition(hu, rng, spacing=(1.0, 1.0, 1.0), body=None, keep=None):
    """Scanner variation on a (z, y, x) HU array -> (new HU float32, note): noise, soft or sharp kernel,
    thick slices (1-5 mm mean along z), a truncated circular field of view (outside = -1024 HU; never
    cutting ``keep``, e.g. the lungs, so labels stay true), a curved CT table under the body and arms
    beside it. ``body``: body mask (default HU > -500). Each effect is drawn with probability 0.4."""
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise LungSegError(f"acquisition needs a (z, y, x) array (a slice as (1, y, x)); got shape {hu.shape}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    out = hu.astype(np.float32, copy=True)
    notes = []
    effects = [e for e in EFFECTS if rng.random() < 0.4] or [EFFECTS[int(rng.integers(len(EFFECTS)))]]
    body = (out > -500) if body is None else np.asarray(body, bool)
    if "table" in effects:
        notes.append(_add_table(out, rng, spacing, body))
    if "arms" in effects:
        notes.append(_add_arms(out, rng, spacing, body))
    if "thick" in effects and out.shape[0] > 2:
        mm = rng.uniform(1.0, 5.0)
        size = int(round(mm / spacing[0]))
        if size >= 2:
            out = ndimage.uniform_filter1d(out, size, axis=0)
            notes.append(f"{mm:.1f} mm slices")
    if "kernel" in effects:
        mm = rng.uniform(0.5, 1.5)
        blur = ndimage.gaussian_filter(out, (0.0, mm / spacing[1], mm / spacing[2]), truncate=2.0)
        if rng.random() < 0.5:
            out, note = blur, f"soft kernel ({mm:.1f} mm blur)"
        else:
            amount = rng.uniform(0.5, 1.5)
            out, note = out + amount * (out - blur), f"sharp kernel (unsharp {amount:.1f} x {mm:.1f} mm)"
        notes.append(note)
    if "noise" in effects:
        out = _noise(out, rng, notes)
    if "fov" in effects:
        notes.append(_truncate_fov(out, rng, spacing, keep))
    if not any(notes):  # nothing applied (no room for arms, one slice, FOV wider than the image): noise
        out = _noise(out, rng, notes)
    return out, "; ".join(n for n in notes if n)


def _noise(out, rng, notes):
    sd = rng.uniform(10, 60)
    notes.append(f"noise {sd:.0f} HU")
    out += np.float32(sd) * rng.standard_normal(out.shape, dtype=np.float32)
    return out


def _truncate_fov(out, rng, spacing, keep):
    ny, nx = out.shape[1:]
    yy, xx = np.ogrid[:ny, :nx]
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    r2 = ((yy - cy) * spacing[1]) ** 2 + ((xx - cx) * spacing[2]) ** 2
    radius = rng.uniform(0.35, 0.5) * min(ny * spacing[1], nx * spacing[2])
    if keep is not None and np.any(keep):
        radius = max(radius, float(np.sqrt(r2[np.any(keep, axis=0)].max())) + 2 * max(spacing[1:]))
    outside = r2 > radius ** 2
    if not outside.any():
        return ""
    out[:, outside] = AIR_HU
    return f"field of view {2 * radius:.0f} mm"


def _body_extent(body):
    """(first row, last row, first column, last column, something below) of the body: the longest run of
    occupied rows, so a thin table (or other object) below an air gap is not taken for the patient;
    "something below" also when the bottom row is flat and wide (a table touching the patient)."""
    occupied = np.any(body, axis=(0, 2)).astype(np.int8)
    if not occupied.any():
        return None
    edges = np.diff(np.concatenate([[0], occupied, [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1
    k = int(np.argmax(ends - starts))
    y0, y1 = int(starts[k]), int(ends[k])
    xs = np.nonzero(np.any(body[:, y0:y1 + 1], axis=(0, 1)))[0]
    width = np.any(body[:, y0:y1 + 1], axis=0).sum(axis=1)  # occupied columns per row
    flat_bottom = width[-1] > 0.6 * width.max()             # a table touching the patient, or cut off
    return y0, y1, int(xs[0]), int(xs[-1]), bool(occupied[y1 + 1:].any() or flat_bottom)


def _has_table(out, extent, spacing) -> bool:
    """A table already in the image: something (> -800 HU, foam and carbon included) across 30 % of the
    width below the body, or a row in the body's lower third that suddenly widens (a table it lies on)."""
    y0, y_back = extent[:2]
    width = (out > -800).any(axis=0).sum(axis=1)  # occupied columns per row
    if (width[y_back + 1:] > 0.3 * out.shape[2]).any():
        return True
    step = max(1, int(round(8.0 / spacing[1])))
    rows = np.arange(max(y0 + step, y_back - (y_back - y0) // 3), y_back + 1)
    return bool(((width[rows] > 0.5 * out.shape[2]) & (width[rows] > 1.3 * width[rows - step])).any())


def _add_table(out, rng, spacing, body):
    extent = _body_extent(body)
    if extent is None or extent[4]:  # no body, or a table is already under it
        return ""
    ny, nx = out.shape[1:]
    _, y_back, x0, x1, _ = extent
    if _has_table(out, extent, spacing):
        return ""
    xc, half = (x0 + x1) / 2, max(1.0, (x1 - x0) / 2)
    gap, thick = rng.uniform(0, 15) / spacing[1], rng.uniform(4, 15) / spacing[1]
    curve = rng.uniform(0, 30) / spacing[1]
    xx = np.arange(nx)
    top = y_back + gap - curve * np.clip(((xx - xc) / (1.3 * half)) ** 2, 0, 1)  # edges curve upwards
    yy = np.arange(ny)[:, None]
    slab = (yy >= top) & (yy <= top + thick)
    if not slab.any():
        return ""
    value = rng.uniform(-200, 400)
    target = slab[None] & (out < -500)
    out[target] = value + rng.normal(0, 10, int(target.sum()))
    return f"table {value:.0f} HU"




def _add_arms(out, rng, spacing, body):
    """Arms down beside the chest: soft-tissue ellipses with a humerus, in the air lateral to the body."""
    extent = _body_extent(body)
    if extent is None:
        return ""
    ny, nx = out.shape[1:]
    y0, y1, x0, x1, _ = extent
    yc = (y0 + y1) / 2 + rng.uniform(-20, 20) / spacing[1]
    ry, rx = rng.uniform(40, 60) / spacing[1], rng.uniform(35, 50) / spacing[2]
    bone_mm, gap = rng.uniform(8, 12), rng.uniform(3, 25) / spacing[2]
    yy, xx = np.ogrid[:ny, :nx]
    arm, bone = np.zeros((ny, nx), bool), np.zeros((ny, nx), bool)
    for side, edge in ((-1, x0), (1, x1)):
        cx = edge + side * (gap + rx)
        arm |= ((yy - yc) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        bone |= ((yy - yc) * spacing[1]) ** 2 + ((xx - cx) * spacing[2]) ** 2 <= bone_mm ** 2
    target = arm[None] & (out < -500)
    if not target.any():
        return ""
    tissue = np.where(bone, rng.uniform(400, 900), rng.uniform(20, 60)).astype(np.float32)
    out[target] = np.broadcast_to(tissue, out.shape)[target] + rng.normal(0, 10, int(target.sum()))
    return "arms"
