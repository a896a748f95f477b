"""Regional CT measurements for edema / ARDS studies: where the lung weight and the non-aerated lung are.

Regions (per lung and both lungs; their boundaries come from both lungs together, so right + left = both):
  ventral->dorsal levels: N slabs of equal thickness along the patient's anterior->posterior axis (LPS y of
      each voxel centre, from the image's direction matrix, so an oblique or prone acquisition is cut along
      the patient's axis, not the image rows), from the most ventral to the most dorsal lung voxel centre;
  cranio-caudal thirds: upper / middle / lower thirds of the lung height along the patient's S-I axis.
Every lung voxel falls in exactly one level and one third, and each region's quantities are computed by
:func:`LungSegLib.measure.quantities` from additive sums, so regional volumes, weights and gas volumes add
up to the totals. Also per lung: the HU histogram and the ventral->dorsal profile.

Supine / prone only decides which end is *dependent* (dorsal when supine, ventral when prone); levels are
always numbered ventral (1) -> dorsal (N).
"""

from __future__ import annotations

import numpy as np

from .errors import LungSegError
from .image import Image
from .measure import BANDS, band_index, gas_fraction, quantities, tissue_fraction

POSITIONS = ("auto", "supine", "prone")
THIRDS = ("upper", "middle", "lower")
HIST_RANGE_HU = (-1000.0, 100.0)
HIST_BIN_HU = 10.0
SIDES = ("right", "left")
DICOM_POSITIONS = {"HFS": "supine", "FFS": "supine", "HFP": "prone", "FFP": "prone",
                   "HFDR": "decubitus", "HFDL": "decubitus", "FFDR": "decubitus", "FFDL": "decubitus"}


def patient_position(image: Image, override: str = "auto") -> tuple:
    """(position, how it was decided): the option, the DICOM PatientPosition, or the direction matrix
    (image rows running to the patient's posterior = supine, to the anterior = prone). NIfTI files are
    usually reoriented on conversion, so for them supine is assumed and said."""
    if override in ("supine", "prone"):
        return override, "given with --position"
    code = str(image.meta.get("patient_position", "") or "").strip().upper()
    if code in DICOM_POSITIONS:
        return DICOM_POSITIONS[code], f"DICOM PatientPosition {code}"
    if str(image.meta.get("source", "")).lower().endswith((".nii", ".nii.gz")):
        return "supine", "assumed (NIfTI orientation does not tell the patient's position; set --position)"
    rows = np.asarray(image.direction, float).reshape(3, 3)[:, 1]  # LPS direction of increasing row index
    axis = int(np.argmax(np.abs(rows)))
    if axis != 1:
        return "decubitus", "direction matrix (image rows run along the patient's left-right axis)"
    return ("supine" if rows[1] > 0 else "prone"), "direction matrix (image rows run " + \
        ("anterior->posterior)" if rows[1] > 0 else "posterior->anterior)")


def _lung_voxels(labels: np.ndarray, hu: np.ndarray, image: Image) -> tuple:
    """Label, HU, LPS y (anterior->posterior) and LPS z (inferior->superior) of every lung voxel, a slice at
    a time (no full-size coordinate arrays)."""
    m = image.ijk_to_lps()
    parts = ([], [], [], [])
    for k in range(labels.shape[0]):
        lab = labels[k]
        jj, ii = np.nonzero((lab == 1) | (lab == 2))
        if not ii.size:
            continue
        parts[0].append(lab[jj, ii])
        parts[1].append(hu[k][jj, ii].astype(np.float32))
        for out, row in ((parts[2], m[1]), (parts[3], m[2])):
            out.append((row[0] * ii + row[1] * jj + (row[2] * k + row[3])).astype(np.float32))
    if not parts[0]:
        return tuple(np.zeros(0, t) for t in (np.uint8, np.float32, np.float32, np.float32))
    return tuple(np.concatenate(p) for p in parts)


def _bins(coord: np.ndarray, n: int, reverse: bool = False) -> tuple:
    """Index 0..n-1 of equal-width bins between the extremes of ``coord`` (from the maximum when
    ``reverse``), and the bin thickness in mm."""
    if not coord.size:
        return np.zeros(0, np.intp), 0.0
    lo, hi = float(coord.min()), float(coord.max())
    thickness = (hi - lo) / n
    if thickness <= 0:
        return np.zeros(coord.size, np.intp), 0.0
    dist = (hi - coord) if reverse else (coord - lo)
    return np.minimum((dist / thickness).astype(np.intp), n - 1), thickness


def _region_sums(lab, h, tissue, gas, band, region, n_regions) -> dict:
    """voxel_sums-style arrays of shape (2 lungs, n_regions[, bands])."""
    n_b = len(BANDS)
    key = ((lab.astype(np.intp) - 1) * n_regions + region) * n_b + band
    size = 2 * n_regions * n_b

    def count(weights=None):
        return np.bincount(key, weights=weights, minlength=size).reshape(2, n_regions, n_b)

    band_n, band_tissue = count(), count(tissue)
    return {"n": band_n.sum(-1), "tissue": band_tissue.sum(-1), "gas": count(gas).sum(-1),
            "hu": count(h).sum(-1), "band_n": band_n, "band_tissue": band_tissue}


def _rows(sums, kind, names, bounds, voxel_ml, density) -> list:
    rows = []
    for r, name in enumerate(names):
        per_side = [{k: v[s, r] for k, v in sums.items()} for s in range(2)]
        both = {k: per_side[0][k] + per_side[1][k] for k in sums}
        for structure, s in zip(("right", "left", "both"), (*per_side, both)):
            rows.append({"structure": structure, "kind": kind, "region": name, "index": r + 1,
                         "from_mm": bounds[r][0], "to_mm": bounds[r][1], **quantities(s, voxel_ml, density)})
    return rows


def histogram(lab, h, voxel_ml) -> dict:
    """Volume (mL) per 10 HU bin from -1000 to +100 HU per lung, and the volume outside that range."""
    lo, hi = HIST_RANGE_HU
    n_bins = int(round((hi - lo) / HIST_BIN_HU))
    b = np.floor((h - lo) / HIST_BIN_HU).astype(np.intp)
    b = np.where(h == hi, n_bins - 1, b)  # the last bin includes +100 HU, as numpy.histogram does
    b = np.clip(b + 1, 0, n_bins + 1)     # 0: below -1000 HU, n_bins + 1: above +100 HU
    counts = np.bincount((lab.astype(np.intp) - 1) * (n_bins + 2) + b, minlength=2 * (n_bins + 2))
    counts = counts.reshape(2, n_bins + 2) * voxel_ml
    out = {"edges_hu": [lo + i * HIST_BIN_HU for i in range(n_bins + 1)], "unit": "mL per bin"}
    for name, c in (("right", counts[0]), ("left", counts[1]), ("both", counts[0] + counts[1])):
        out[name] = [float(v) for v in c[1:-1]]
        out.setdefault("below_range_ml", {})[name] = float(c[0])
        out.setdefault("above_range_ml", {})[name] = float(c[-1])
    return out


def measure_regions(labels: np.ndarray, image: Image, density: float = 1.0, levels: int = 10,
                    position: str = "auto") -> dict:
    """The ``regions`` section of measurements.json for a CT label map on the image's grid."""
    if not 1 <= int(levels) <= 100:
        raise LungSegError(f"levels must be between 1 and 100; got {levels}")
    levels = int(levels)
    voxel_ml = image.voxel_volume_ml
    lab, h, ap, si = _lung_voxels(labels, image.array, image)
    tissue, gas, band = tissue_fraction(h), gas_fraction(h), band_index(h)
    level, level_mm = _bins(ap, levels)
    third, third_mm = _bins(si, 3, reverse=True)
    level_bounds = [(i * level_mm, (i + 1) * level_mm) for i in range(levels)]
    third_bounds = [(i * third_mm, (i + 1) * third_mm) for i in range(3)]
    rows = (_rows(_region_sums(lab, h, tissue, gas, band, level, levels), "ventral_dorsal",
                  [f"level_{i + 1}" for i in range(levels)], level_bounds, voxel_ml, density)
            + _rows(_region_sums(lab, h, tissue, gas, band, third, 3), "cranio_caudal", THIRDS, third_bounds,
                    voxel_ml, density))
    pos, how = patient_position(image, position)
    dependent = {"supine": "dorsal", "prone": "ventral"}.get(pos, "not along the ventral-dorsal axis")
    return {"position": pos, "position_source": how, "dependent_side": dependent, "levels": levels,
            "level_thickness_mm": level_mm, "third_height_mm": third_mm,
            "method": {
                "ventral_dorsal": f"{levels} levels of equal thickness along the patient's anterior->posterior axis "
                                  "(LPS y of voxel centres, from the direction matrix) between the most ventral and "
                                  "the most dorsal lung voxel of both lungs; level 1 is the most ventral; from_mm/to_mm "
                                  "are depths below the most ventral lung voxel",
                "cranio_caudal": "upper/middle/lower thirds of the height of both lungs along the patient's "
                                 "superior-inferior axis; from_mm/to_mm are distances below the most cranial lung voxel",
                "quantities": "same definitions and density model as the totals (see method); regional volume, "
                              "weight, gas volume and voxel counts add up to the totals",
                "position": "supine/prone from --position, else DICOM PatientPosition, else the direction matrix; "
                            "it only sets the dependent side"},
            "rows": rows, "histogram": histogram(lab, h, voxel_ml),
            "profile": profile(rows, level_bounds)}


def profile(rows: list, level_bounds) -> dict:
    """Ventral->dorsal curves per structure: mean HU, gas fraction and tissue weight per level."""
    out = {"depth_mm": [(a + b) / 2 for a, b in level_bounds]}
    for structure in ("right", "left", "both"):
        mine = [r for r in rows if r["kind"] == "ventral_dorsal" and r["structure"] == structure]
        out[structure] = {"mean_hu": [r["mean_hu"] for r in mine],
                          "gas_fraction": [r["gas_volume_ml"] / r["volume_ml"] if r["volume_ml"] else 0.0
                                           for r in mine],
                          "weight_g": [r["weight_g"] for r in mine]}
    return out
