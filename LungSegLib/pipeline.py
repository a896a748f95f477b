"""The one road for the data: read -> validate -> canonical grid -> engine -> post-process -> back to
the input grid -> measure -> quality flags. The CLI, the Slicer logic and evaluation all call this."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import __version__
from .engines import ENGINES
from .errors import LungSegError
from .image import CT, CXR, Image, from_canonical, to_canonical
from .io import read_image
from .measure import hu_calibration, measure_ct, measure_cxr
from .params import Parameters
from .validate import check_image


@dataclass
class Result:
    image: Image                 # the input as read (never modified)
    labels: Image                # uint8 labels on the input grid: 0 background, 1 right, 2 left
    engine: str
    model: dict
    measurements: dict
    qc: dict
    warnings: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    def report(self, case: str = "") -> dict:
        """Everything measurements.json holds."""
        model = {k: self.model.get(k) for k in ("name", "version", "task", "arch")}
        return {"case": case, "input": self.image.meta.get("source", ""), "modality": self.image.modality,
                "engine": self.engine, "arch": model.get("arch"), "model": model,
                "lungseg_version": __version__, "shape": list(self.image.array.shape),
                "spacing_mm": [float(s) for s in self.image.spacing], **self.measurements,
                "qc": self.qc, "warnings": self.warnings, "timings_s": self.timings}


def choose_engine(image: Image, params: Parameters) -> str:
    """auto: the radiograph model for 2D radiographs; for CT the slice-wise network when its model is
    shipped (or weights are given), else the HU engine."""
    if params.engine != "auto":
        return params.engine
    if image.modality == CXR:
        return "cxr"
    from .networks import shipped_cards

    has_ct2d = params.weights or any(c.get("task") == "ct2d" for c in shipped_cards())
    return "ct2d" if has_ct2d else "hu"


def segment_image(image: Image, params: Parameters | None = None, progress=None) -> Result:
    """Segment an in-memory :class:`Image` and measure it. ``progress(fraction, message)`` returning
    False cancels."""
    params = (params or Parameters()).validate()
    if params.modality in (CT, CXR):
        image.modality = params.modality
    engine = choose_engine(image, params)
    warnings = check_image(image, engine, params)
    _set_threads(params.threads)
    t0 = time.perf_counter()
    canonical = to_canonical(image) if image.ndim == 3 else image
    labels_c, card = ENGINES[engine](canonical, params, progress)
    labels = from_canonical(labels_c, canonical, image)
    t1 = time.perf_counter()
    label_image = image.with_array(labels.astype(np.uint8))
    if image.modality == CT:
        measurements = measure_ct(labels, image.array, image.voxel_volume_ml, params.density)
        qc = qc_ct(labels_c, canonical, measurements)
    else:
        measurements = measure_cxr(labels, image)
        qc = qc_cxr(labels, measurements)
    if progress is not None:
        progress(1.0, "done")
    return Result(image, label_image, engine, card, measurements, qc, warnings,
                  {"segment": round(t1 - t0, 3), "measure": round(time.perf_counter() - t1, 3)})


def run_case(path, params: Parameters | None = None, progress=None) -> Result:
    params = (params or Parameters()).validate()
    t0 = time.perf_counter()
    image = read_image(path, params.modality)
    t_read = time.perf_counter() - t0
    result = segment_image(image, params, progress)
    result.timings = {"read": round(t_read, 3), **result.timings}
    return result


def _set_threads(n: int) -> None:
    if n and n > 0:
        import torch

        torch.set_num_threads(int(n))


def qc_ct(labels_c: np.ndarray, canonical: Image, m: dict) -> dict:
    s = m["structures"]
    both_l = s["both"]["volume_ml"] / 1000.0
    flags = []
    cal = hu_calibration(canonical.array)
    if not cal["ok"]:
        flags.append("hu_calibration_off")
    if s["both"]["voxel_count"] == 0:
        flags.append("no_lung_found")
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
    return {"flags": flags, "hu_calibration": cal,
            "right_left_volume_ratio": (s["right"]["volume_ml"] / s["left"]["volume_ml"]
                                        if s["left"]["volume_ml"] else None)}


def qc_cxr(labels: np.ndarray, m: dict) -> dict:
    flags = []
    frac = m["structures"]["both"]["pixel_count"] / labels.size
    if m["structures"]["both"]["pixel_count"] == 0:
        flags.append("no_lung_found")
    elif not (m["structures"]["right"]["pixel_count"] and m["structures"]["left"]["pixel_count"]):
        flags.append("not_two_lungs_possibly_lateral_or_non_chest")
    elif not 0.08 <= frac <= 0.6:
        flags.append("implausible_lung_area_fraction")
    ratio = m.get("right_left_area_ratio")
    if ratio is not None and not 0.6 <= ratio <= 1.8:
        flags.append("right_left_ratio_outside_0.6_1.8")
    return {"flags": flags, "lung_area_fraction": frac}


__all__ = ["Result", "segment_image", "run_case", "choose_engine", "LungSegError"]
