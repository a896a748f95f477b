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

THIRDS = ("upper", "middle", "lower")
HIST_RANGE_HU = (-1000.0, 100.0)
HIST_BIN_HU = 10.0
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
    if axis == 0:
        return "decubitus", "direction matrix (image rows run along the patient's left-right axis)"
    if axis == 2:
        return "supine", "assumed (image rows run head-foot, a coronal or sagittal stack; set --position)"
    return ("supine" if rows[1] > 0 else "prone"), "direction matrix (image rows run " + \
        ("anterior->posterior)" if rows[1] > 0 else "posterior->anterior)")


def _lung_voxels(labels: np.ndarray, hu: np.ndarray, image: Image) -> tuple:
    """Label, HU (as stored), LPS y (anterior->posterior) and LPS z (inferior->superior) of every lung voxel,
    filled a slice at a time into arrays allocated once (no full-size coordinate arrays)."""
    m = image.ijk_to_lps()
    nz, ny, nx = labels.shape
    n = int(np.count_nonzero(labels))
    lab, h = np.empty(n, np.uint8), np.empty(n, hu.dtype)
    ap, si = np.empty(n, np.float32), np.empty(n, np.float32)
    along_i = [(m[r, 0] * np.arange(nx)).astype(np.float32) for r in (1, 2)]
    along_j = [(m[r, 1] * np.arange(ny)).astype(np.float32) for r in (1, 2)]
    pos = 0
    for k in np.flatnonzero(labels.reshape(nz, -1).any(axis=1)):
        jj, ii = np.nonzero(labels[k])
        end = pos + ii.size
        lab[pos:end], h[pos:end] = labels[k][jj, ii], hu[k][jj, ii]
        for r, out in ((1, ap), (2, si)):
            out[pos:end] = along_i[r - 1][ii] + along_j[r - 1][jj] + np.float32(m[r, 2] * k + m[r, 3])
        pos = end
    keep = (lab == 1) | (lab == 2)
    if not keep.all():  # other label values are not lung
        lab, h, ap, si = lab[keep], h[keep], ap[keep], si[keep]
    return lab, h, ap, si


def _bins(coord: np.ndarray, n: int, reverse: bool = False) -> tuple:
    """Index 0..n-1 (uint8) of equal-width bins between the extremes of ``coord`` (from the maximum when
    ``reverse``), and the bin width in mm."""
    if not coord.size:
        return np.zeros(0, np.uint8), 0.0
    lo, hi = float(coord.min()), float(coord.max())
    width = (hi - lo) / n
    if width <= 0:
        return np.zeros(coord.size, np.uint8), 0.0
    dist = (np.float32(hi) - coord) if reverse else (coord - np.float32(lo))
    dist *= np.float32(1.0 / width)
    return np.minimum(dist, n - 1).astype(np.uint8), width


def _hist_bin(h: np.ndarray) -> np.ndarray:
    """Histogram bin of each HU value: 0 below -1000 HU, 1..110 the 10 HU bins, 111 above +100 HU."""
    lo, hi = HIST_RANGE_HU
    n_bins = int(round((hi - lo) / HIST_BIN_HU))
    b = np.floor((h - lo) / HIST_BIN_HU).astype(np.intp)
    b = np.where(h == hi, n_bins - 1, b)  # the last bin includes +100 HU, as numpy.histogram does
    return np.clip(b + 1, 0, n_bins + 1)


N_HIST = int(round((HIST_RANGE_HU[1] - HIST_RANGE_HU[0]) / HIST_BIN_HU)) + 2


def _cube(lab, h, level, third, levels) -> dict:
    """voxel_sums-style totals per (lung, level, third) (and per band), and the histogram counts per lung.
    Stored integer HU (the usual case) go through one bincount over (region, HU value) and per-HU lookup
    tables; other HU go voxel by voxel. Both use the same per-voxel functions as the totals."""
    n_b, shape = len(BANDS), (2, levels, 3)
    region = (lab.astype(np.int64) - 1) * (levels * 3) + level.astype(np.int64) * 3 + third
    if np.issubdtype(h.dtype, np.integer) and h.size:
        hmin, hmax = int(h.min()), int(h.max())
        n_hu = hmax - hmin + 1
        if 2 * levels * 3 * n_hu <= 8_000_000:
            region *= n_hu
            region += h
            region -= hmin
            counts = np.bincount(region, minlength=2 * levels * 3 * n_hu).reshape(-1, n_hu)
            del region
            values = np.arange(hmin, hmax + 1, dtype=np.float32)
            tissue, band = tissue_fraction(values).astype(np.float64), band_index(values)
            c = counts.astype(np.float64)
            band_n = np.stack([counts[:, band == b].sum(1) for b in range(n_b)], -1)
            band_tissue = np.stack([c[:, band == b] @ tissue[band == b] for b in range(n_b)], -1)
            per_lung = counts.reshape(2, -1, n_hu).sum(1)
            hist = np.stack([np.bincount(_hist_bin(values), weights=per_lung[s], minlength=N_HIST) for s in range(2)])
            return {"n": counts.sum(1).reshape(shape), "tissue": (c @ tissue).reshape(shape),
                    "gas": (c @ gas_fraction(values).astype(np.float64)).reshape(shape),
                    "hu": (c @ values.astype(np.float64)).reshape(shape),
                    "band_n": band_n.reshape(*shape, n_b), "band_tissue": band_tissue.reshape(*shape, n_b),
                    "hist": hist}
    h = h.astype(np.float32)
    tissue = tissue_fraction(h)
    key = region * n_b + band_index(h)
    size = 2 * levels * 3 * n_b

    def count(weights=None):
        return np.bincount(key, weights=weights, minlength=size).reshape(*shape, n_b)

    band_n, band_tissue = count(), count(tissue)
    hist_key = (lab.astype(np.intp) - 1) * N_HIST + _hist_bin(h)
    return {"n": band_n.sum(-1), "tissue": band_tissue.sum(-1), "gas": count(gas_fraction(h)).sum(-1),
            "hu": count(h).sum(-1), "band_n": band_n, "band_tissue": band_tissue,
            "hist": np.bincount(hist_key, minlength=2 * N_HIST).reshape(2, N_HIST)}


def _rows(sums, kind, names, bounds, voxel_ml, density) -> list:
    rows = []
    for r, name in enumerate(names):
        per_side = [{k: v[s, r] for k, v in sums.items()} for s in range(2)]
        both = {k: per_side[0][k] + per_side[1][k] for k in sums}
        for structure, s in zip(("right", "left", "both"), (*per_side, both)):
            rows.append({"structure": structure, "kind": kind, "region": name, "index": r + 1,
                         "from_mm": bounds[r][0], "to_mm": bounds[r][1], **quantities(s, voxel_ml, density)})
    return rows


def histogram(counts: np.ndarray, voxel_ml: float) -> dict:
    """Volume (mL) per 10 HU bin from -1000 to +100 HU per lung, and the volume outside that range."""
    lo = HIST_RANGE_HU[0]
    counts = counts * voxel_ml
    out = {"edges_hu": [lo + i * HIST_BIN_HU for i in range(N_HIST - 1)], "unit": "mL per bin",
           "below_range_ml": {}, "above_range_ml": {}}
    for name, c in (("right", counts[0]), ("left", counts[1]), ("both", counts[0] + counts[1])):
        out[name] = [float(v) for v in c[1:-1]]
        out["below_range_ml"][name], out["above_range_ml"][name] = float(c[0]), float(c[-1])
    return out


def measure_regions(labels: np.ndarray, image: Image, density: float = 1.0, levels: int = 10,
                    position: str = "auto") -> dict:
    """The ``regions`` section of measurements.json for a CT label map on the image's grid."""
    if not 1 <= int(levels) <= 100:
        raise LungSegError(f"levels must be between 1 and 100; got {levels}")
    levels = int(levels)
    voxel_ml = image.voxel_volume_ml
    lab, h, ap, si = _lung_voxels(labels, image.array, image)
    level, level_mm = _bins(ap, levels)
    del ap
    third, third_mm = _bins(si, 3, reverse=True)
    del si
    cube = _cube(lab, h, level, third, levels)
    hist = cube.pop("hist")
    level_bounds = [(i * level_mm, (i + 1) * level_mm) for i in range(levels)]
    third_bounds = [(i * third_mm, (i + 1) * third_mm) for i in range(3)]
    rows = (_rows({k: v.sum(2) for k, v in cube.items()}, "ventral_dorsal",
                  [f"level_{i + 1}" for i in range(levels)], level_bounds, voxel_ml, density)
            + _rows({k: v.sum(1) for k, v in cube.items()}, "cranio_caudal", THIRDS, third_bounds,
                    voxel_ml, density))
    pos, how = patient_position(image, position)
    dependent = {"supine": "dorsal", "prone": "ventral"}.get(pos, "not along the ventral-dorsal axis")
    return {"position": pos, "position_source": how, "dependent_side": dependent, "levels": levels,
            "level_thickness_mm": level_mm, "third_height_mm": third_mm,
            "method": {
                "ventral_dorsal": f"{levels} levels of equal thickness along the patient's anterior->posterior "
                                  "axis (LPS y of voxel centres, from the direction matrix) between the most ventral "
                                  "and the most dorsal lung voxel of both lungs; level 1 is the most ventral; "
                                  "from_mm/to_mm are depths below the most ventral lung voxel",
                "cranio_caudal": "upper/middle/lower thirds of the height of both lungs along the patient's "
                                 "superior-inferior axis; from_mm/to_mm are distances below the most cranial "
                                 "lung voxel",
                "quantities": "same definitions and density model as the totals (see method); regional volume, "
                              "weight, gas volume and voxel counts add up to the totals",
                "position": "supine/prone from --position, else DICOM PatientPosition, else the direction matrix; "
                            "it only sets the dependent side"},
            "rows": rows, "histogram": histogram(hist, voxel_ml),
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
