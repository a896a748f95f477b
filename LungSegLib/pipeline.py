"""The one road for the data: read -> validate -> canonical grid -> engine -> post-process -> back to
the input grid -> measure -> quality flags. The CLI, the Slicer logic and evaluation all call this."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

from . import __version__
from .dependencies import require_for
from .engines import ENGINES
from .errors import CancelledError, LungSegError
from .image import CT, CXR, Image, from_canonical, inplane_spacing_mm, to_canonical
from .io import read_image
from .measure import measure_ct, measure_cxr
from .options import CaseOptions
from .params import Parameters
from .regions import measure_regions
from .qc import qc_ct, qc_cxr  # noqa: F401 (qc_ct/qc_cxr were defined here)
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
    options: CaseOptions = field(default_factory=CaseOptions)

    def report(self, case: str = "") -> dict:
        """Everything measurements.json holds."""
        model = {k: self.model.get(k) for k in ("name", "version", "task", "arch")}
        return {"case": case, "input": self.image.meta.get("source", ""), "modality": self.image.modality,
                "engine": self.engine, "arch": model.get("arch"), "model": model,
                "lungseg_version": __version__, "shape": list(self.image.array.shape),
                "spacing_mm": [float(s) for s in self.image.spacing], **self.measurements,
                "qc": self.qc, "warnings": self.warnings, "timings_s": self.timings}


def choose_engine(image: Image, params: Parameters) -> str:
    """auto: the radiograph model for 2D radiographs; for CT, among the shipped CT networks suited to the
    in-plane pixel size, the one with the best :func:`networks.selection_dice` (ct2d, ct3d or the shipped
    ct2d+ct3d ensemble; ct2d when a weights file is given), else the HU engine."""
    if params.engine != "auto":
        return params.engine
    if image.modality == CXR:
        return "cxr"
    if params.weights:
        return "ct2d"
    from .networks import best_validated_task

    return best_validated_task(("ct2d", "ct3d", "ct2d+ct3d"), inplane_spacing_mm(image)) or "hu"


def segment_image(image: Image, params: Parameters | None = None, progress=None,
                  options: CaseOptions | None = None) -> Result:
    """Segment an in-memory :class:`Image` and measure it. ``progress(fraction, message)`` returning
    False cancels; ``options``: regional levels and patient position (:class:`CaseOptions`)."""
    params = (params or Parameters()).validate()
    options = (options or CaseOptions()).validate()
    if params.modality in (CT, CXR):
        image.modality = params.modality
    engine = choose_engine(image, params)
    warnings = check_image(image, engine, params)
    require_for(engine)  # one line saying how to install torch/MONAI, not a ModuleNotFoundError
    t0 = time.perf_counter()
    canonical = to_canonical(image) if image.ndim == 3 else image
    with torch_threads(params.threads if engine != "hu" else 0):
        labels_c, card = ENGINES[engine](canonical, params, progress)
    labels = from_canonical(labels_c, canonical, image)
    if progress is not None and progress(0.9, "measuring") is False:
        raise CancelledError("cancelled by the user")
    t1 = time.perf_counter()
    label_image = image.with_array(labels.astype(np.uint8))
    timings = {"segment": round(t1 - t0, 3)}
    if image.modality == CT:
        measurements = measure_ct(labels, image.array, image.voxel_volume_ml, params.density)
        t_regions = time.perf_counter()
        measurements["regions"] = measure_regions(labels, image, params.density, options.levels, options.position)
        timings["regions"] = round(time.perf_counter() - t_regions, 3)
        qc = qc_ct(labels_c, canonical, measurements, card.get("raw_large_components"))
    else:
        measurements = measure_cxr(labels, image)
        qc = qc_cxr(labels, measurements, card.get("raw_large_components"), image)
    if progress is not None:
        progress(1.0, "done")
    return Result(image, label_image, engine, card, measurements, qc, warnings,
                  {**timings, "measure": round(time.perf_counter() - t1, 3)}, options)


def run_case(path, params: Parameters | None = None, progress=None, options: CaseOptions | None = None) -> Result:
    params = (params or Parameters()).validate()
    options = (options or CaseOptions()).validate()
    t0 = time.perf_counter()
    image = read_image(path, params.modality)
    if options.dicom_seg:
        from .dicom_seg import check_dicom_source

        check_dicom_source(image)
    t_read = time.perf_counter() - t0
    result = segment_image(image, params, progress, options)
    result.timings = {"read": round(t_read, 3), **result.timings}
    return result


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to ``n`` for one run and restored after (the Slicer session and
    a batch's other cases keep theirs); 0 leaves torch alone and does not import it."""
    if not n or n <= 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


__all__ = ["Result", "segment_image", "run_case", "choose_engine", "qc_ct", "qc_cxr", "LungSegError"]
