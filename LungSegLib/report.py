"""Writing one case's outputs: label files, measurements.json, CSV rows, the QC overlay and report.png."""

from __future__ import annotations

import csv
import io as _io
import json
import time
from pathlib import Path

import numpy as np

from .figures import ct_views, grey, outlined, save_report_png
from .image import CT
from .io import atomic_path, write_labels, write_seg_nrrd, write_text
from .radiograph import labels_at_input_size

CSV_COLUMNS = ["case", "modality", "engine", "arch", "model", "structure", "voxel_count", "volume_ml",
               "weight_g", "gas_volume_ml", "mean_hu", "over_aerated_volume_fraction",
               "normally_aerated_volume_fraction", "poorly_aerated_volume_fraction",
               "non_aerated_volume_fraction", "over_aerated_weight_fraction",
               "normally_aerated_weight_fraction", "poorly_aerated_weight_fraction",
               "non_aerated_weight_fraction", "pixel_count", "area_cm2", "density_g_per_ml", "qc_flags"]
REGION_COLUMNS = ["case", "engine", "model", "position", "structure", "kind", "region", "index", "from_mm", "to_mm",
                  *CSV_COLUMNS[CSV_COLUMNS.index("voxel_count"):CSV_COLUMNS.index("pixel_count")],
                  "density_g_per_ml"]


def csv_rows(case: str, report: dict) -> list:
    rows = []
    density = report.get("method", {}).get("density_g_per_ml")
    for structure, values in report["structures"].items():
        row = {"case": case, "modality": report["modality"], "engine": report["engine"],
               "arch": report.get("arch") or "", "model": report["model"].get("name", ""),
               "structure": structure, "density_g_per_ml": density if density is not None else "",
               "qc_flags": ";".join(report["qc"]["flags"])}
        row.update({k: v for k, v in values.items() if k in CSV_COLUMNS})
        rows.append({c: ("" if row.get(c) is None else row.get(c, "")) for c in CSV_COLUMNS})
    return rows


def region_rows(case: str, report: dict) -> list:
    """regions.csv rows of one case (none for radiographs): one per structure x region."""
    regions = report.get("regions")
    if not regions:
        return []
    common = {"case": case, "engine": report["engine"], "model": report["model"].get("name", ""),
              "position": regions["position"], "density_g_per_ml": report["method"]["density_g_per_ml"]}
    return [{c: {**common, **row}.get(c, "") for c in REGION_COLUMNS} for row in regions["rows"]]


def rows_to_csv(rows: list, columns=CSV_COLUMNS) -> str:
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_case(result, case: str, case_dir) -> dict:
    """All per-case files; measurements.json is written last, so its presence marks a finished case."""
    case_dir = Path(case_dir)
    case_dir.mkdir(parents=True, exist_ok=True)
    report = result.report(case)
    if result.image.modality == CT:
        write_labels(case_dir / "lungs.nii.gz", result.labels)
        write_seg_nrrd(case_dir / "lungs.seg.nrrd", result.labels)
        if result.options.dicom_seg:
            from .dicom_seg import write_dicom_seg

            write_dicom_seg(result, case_dir / "lungs.seg.dcm")
    else:
        write_labels(case_dir / "lungs.png", labels_at_input_size(result))
        if result.options.dicom_seg:
            from .dicom_seg import write_dicom_seg

            write_dicom_seg(result, case_dir / "lungs.seg.dcm")
    t_pictures = time.perf_counter()
    views = ct_views(result.image, result.labels) if result.image.modality == CT else None
    with atomic_path(case_dir / "overlay.png") as tmp:
        overlay_picture(result, views=views).save(tmp, format="PNG")
    t_report = time.perf_counter()
    with atomic_path(case_dir / "report.png") as tmp:
        save_report_png(result, _jsonable(report), tmp, views)
    report["timings_s"] = {**report["timings_s"], "overlay_png": round(t_report - t_pictures, 3),
                           "report_png": round(time.perf_counter() - t_report, 3)}
    write_text(case_dir / "measurements.json", json.dumps(_jsonable(report), indent=2))
    return report


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def overlay_picture(result, panel: int = 320, views=None):
    """QC picture: the radiograph, or mid-axial / coronal / sagittal CT views through the lungs, with the
    right (green) and left (orange) lung outlined. Views are shown in radiological convention."""
    from PIL import Image as PILImage

    if result.image.modality != CT:
        arr = result.image.array
        lo, hi = np.percentile(arr, (0.5, 99.5))
        return PILImage.fromarray(outlined(grey(arr, lo, hi), result.labels.array))
    tiles = []
    for _, img, lab, row_mm, col_mm, _ in views or ct_views(result.image, result.labels):
        tile = PILImage.fromarray(outlined(grey(img, -1200, 400), lab))
        h, w = img.shape
        scale = panel / max(h * row_mm, w * col_mm)
        tile = tile.resize((max(1, int(w * col_mm * scale)), max(1, int(h * row_mm * scale))),
                           PILImage.NEAREST)
        canvas = PILImage.new("RGB", (panel, panel))
        canvas.paste(tile, ((panel - tile.width) // 2, (panel - tile.height) // 2))
        tiles.append(canvas)
    out = PILImage.new("RGB", (panel * 3, panel))
    for i, t in enumerate(tiles):
        out.paste(t, (i * panel, 0))
    return out
