"""Lung measurements with units and a stated method. Plain dicts; no I/O.

CT, per structure (right, left, both):
  volume_ml      = voxel_count x voxel volume
  weight_g       = sum(voxel_ml x tissue_fraction) x density,  tissue_fraction = clip((HU + 1000) / 1000, 0, 1)
                   (HU <= -1000: pure gas, 0; HU >= 0: pure tissue, 1 - voxels denser than water count as
                   tissue of the given density, not more)
  gas_volume_ml  = sum(voxel_ml x clip(-HU / 1000, 0, 1))
  HU bands (fractions of volume and of weight): over-aerated < -900, normally aerated -900..-500,
  poorly aerated -500..-100, non-aerated >= -100 (the -100..+100 band also takes the few voxels above +100).
Radiographs: projected area in pixels and cm2 (when pixel spacing is known), right/left area ratio.
"""

from __future__ import annotations

import numpy as np

from .image import Image

RIGHT, LEFT = 1, 2
STRUCTURES = (("right", (RIGHT,)), ("left", (LEFT,)), ("both", (RIGHT, LEFT)))
BANDS = (  # name, lower HU (inclusive), upper HU (exclusive)
    ("over_aerated", -np.inf, -900.0),
    ("normally_aerated", -900.0, -500.0),
    ("poorly_aerated", -500.0, -100.0),
    ("non_aerated", -100.0, np.inf),
)
CT_UNITS = {"voxel_count": "voxels", "volume_ml": "mL", "weight_g": "g", "gas_volume_ml": "mL",
            "mean_hu": "HU", **{f"{b}_volume_fraction": "1" for b, _, _ in BANDS},
            **{f"{b}_weight_fraction": "1" for b, _, _ in BANDS}}
CXR_UNITS = {"pixel_count": "pixels", "area_cm2": "cm2"}
WEIGHT_METHOD = ("two-compartment gas/tissue model (Gattinoni): weight_g = sum(voxel_mL * clip((HU+1000)/1000, 0, 1))"
                 " * density; density {density} g/mL; voxels above 0 HU count as pure tissue; CT weight "
                 "includes blood in the lung")


def _structure_mask(labels: np.ndarray, values) -> np.ndarray:
    """Voxels whose label is one of ``values`` (comparisons, not np.isin: no 64-bit copy of a big map)."""
    mask = labels == values[0]
    for v in values[1:]:
        mask |= labels == v
    return mask


def tissue_fraction(h: np.ndarray) -> np.ndarray:
    """Tissue share of each voxel in the two-compartment model: clip((HU + 1000) / 1000, 0, 1)."""
    return np.clip((h + 1000.0) / 1000.0, 0.0, 1.0)


def gas_fraction(h: np.ndarray) -> np.ndarray:
    """Gas share of each voxel: clip(-HU / 1000, 0, 1)."""
    return np.clip(-h / 1000.0, 0.0, 1.0)


BAND_EDGES = np.array([hi for _, _, hi in BANDS[:-1]], np.float32)


def band_index(h: np.ndarray) -> np.ndarray:
    """Index into BANDS of each voxel (lower edge inclusive, upper exclusive)."""
    return np.searchsorted(BAND_EDGES, h, side="right").astype(np.uint8)


def voxel_sums(h: np.ndarray) -> dict:
    """The additive sums every CT quantity is made from (so regions add up exactly to the totals)."""
    tissue = tissue_fraction(h)
    band = band_index(h)
    return {"n": int(h.size), "tissue": float(tissue.sum(dtype=np.float64)),
            "gas": float(gas_fraction(h).sum(dtype=np.float64)), "hu": float(h.sum(dtype=np.float64)),
            "band_n": np.bincount(band, minlength=len(BANDS)).astype(np.int64),
            "band_tissue": np.bincount(band, weights=tissue, minlength=len(BANDS))}


def quantities(sums: dict, voxel_ml: float, density: float) -> dict:
    """One row of CT quantities (volume, weight, gas volume, mean HU, band fractions) from :func:`voxel_sums`
    (or sums of several of them)."""
    n, weight = int(sums["n"]), float(sums["tissue"]) * voxel_ml * density
    row = {"voxel_count": n, "volume_ml": n * voxel_ml, "weight_g": weight,
           "gas_volume_ml": float(sums["gas"]) * voxel_ml, "mean_hu": float(sums["hu"]) / n if n else 0.0}
    for b, (band, _, _) in enumerate(BANDS):
        row[f"{band}_volume_fraction"] = float(sums["band_n"][b]) / n if n else 0.0
        row[f"{band}_weight_fraction"] = (float(sums["band_tissue"][b]) * voxel_ml * density / weight
                                          if weight > 0 else 0.0)
    return row


def ct_method(density: float) -> dict:
    return {"volume": "voxel count x voxel volume",
            "weight": WEIGHT_METHOD.format(density=density),
            "gas_volume": "sum(voxel_mL * clip(-HU/1000, 0, 1))",
            "hu_bands": {b: [None if np.isinf(lo) else lo, None if np.isinf(hi) else hi] for b, lo, hi in BANDS},
            "density_g_per_ml": density}


def measure_ct(labels: np.ndarray, hu: np.ndarray, voxel_ml: float, density: float = 1.0) -> dict:
    """Per-structure CT measurements (see module docstring)."""
    structures = {}
    for name, values in STRUCTURES:
        h = hu[_structure_mask(labels, values)].astype(np.float32)  # float32 values, float64 sums
        structures[name] = quantities(voxel_sums(h), voxel_ml, density)
    return {"structures": structures, "units": dict(CT_UNITS), "method": ct_method(density)}


def measure_cxr(labels: np.ndarray, image: Image) -> dict:
    """Projected lung area per structure; cm2 only when the pixel spacing is known."""
    structures = {}
    for name, values in STRUCTURES:
        n = int(_structure_mask(labels, values).sum())
        structures[name] = {"pixel_count": n,
                            "area_cm2": n * image.pixel_area_cm2 if image.spacing_known else None}
    r, l = structures["right"]["pixel_count"], structures["left"]["pixel_count"]
    return {"structures": structures, "units": dict(CXR_UNITS),
            "right_left_area_ratio": (r / l) if l else None,
            "method": {"area": "projected lung area on the radiograph (pixel count x pixel area); no volume "
                               "or weight can be derived from a single projection",
                       "pixel_spacing_known": bool(image.spacing_known)}}


def hu_calibration(hu: np.ndarray, body_lungs: np.ndarray | None = None) -> dict:
    """Air peak of the histogram below -800 HU; flagged when it is more than 50 HU from -1000."""
    sample = hu[::2, ::2, ::2] if hu.ndim == 3 else hu
    low = sample[(sample < -800) & (sample > -1200)]
    if low.size < 100:
        return {"air_peak_hu": None, "ok": False, "note": "no air found below -800 HU"}
    hist, edges = np.histogram(low, bins=80, range=(-1200, -800))
    peak = float(edges[np.argmax(hist)] + 2.5)
    ok = abs(peak + 1000.0) <= 50.0
    return {"air_peak_hu": peak, "ok": ok,
            "note": "air peak near -1000 HU" if ok else f"air peak at {peak:.0f} HU, expected about -1000 HU"}
