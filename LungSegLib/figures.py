"""The per-case picture people look at instead of reading: report.png.

CT: axial / coronal / sagittal views through the lungs with the right and left lung outlined and a legend,
the case, engine, model, per-lung volume and weight, QC flags, the HU histograms and the ventral->dorsal
profile (tissue weight, gas fraction and mean HU per level). Radiographs: the overlay with the areas and the
right/left ratio. Drawn with Pillow (:mod:`LungSegLib.plots`): a few tens of milliseconds per case.
"""

from __future__ import annotations

import numpy as np

from .image import CT, to_canonical
from .plots import Page, line_plot, padded

RIGHT_RGB, LEFT_RGB = (64, 200, 64), (255, 170, 30)  # the outline colours of overlay.png
COLOURS = {"right": RIGHT_RGB, "left": LEFT_RGB, "both": (80, 80, 80)}
CT_PAGE, CXR_PAGE = (1600, 960), (1400, 820)
WINDOW_HU = (-1200, 400)


def grey(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (np.clip((arr.astype(np.float32) - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def outlined(grey_image: np.ndarray, labels: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """RGB picture with the right (green) and left (orange) lung outlined, optionally tinted inside."""
    from skimage.segmentation import find_boundaries

    rgb = np.repeat(grey_image[..., None], 3, axis=-1)
    for value, colour in ((1, RIGHT_RGB), (2, LEFT_RGB)):
        inside = labels == value
        if fill:
            rgb[inside] = (rgb[inside] * (1 - fill) + np.asarray(colour) * fill).astype(np.uint8)
        rgb[find_boundaries(inside, mode="inner")] = colour
    return rgb


def median_index(mask: np.ndarray, axis: int) -> int:
    """Median position of the mask's voxels along ``axis`` (from its projection: no index arrays)."""
    counts = mask.sum(axis=tuple(a for a in range(mask.ndim) if a != axis), dtype=np.int64)
    return int(np.searchsorted(np.cumsum(counts), counts.sum() / 2.0))


def ct_views(image, labels) -> list:
    """(name, HU slice, label slice, row mm, column mm, (left, right, top, bottom) letters) for the
    axial, coronal and sagittal planes through the median lung voxel, in radiological convention."""
    ct = to_canonical(image)
    lab = to_canonical(labels).array
    hu = ct.array
    sx, sy, sz = ct.spacing
    coarse = lab[::2, ::2, ::2]  # where to cut: every second voxel is plenty, and 8 times less work
    lungs = coarse > 0
    z, y, x = (2 * median_index(lungs, a) for a in range(3)) if lungs.any() else (s // 2 for s in hu.shape)
    if (coarse == 1).any():  # sagittal through the right lung, not the mediastinum between the lungs
        x = 2 * median_index(coarse == 1, 2)
    z, y, x = min(z, hu.shape[0] - 1), min(y, hu.shape[1] - 1), min(x, hu.shape[2] - 1)
    # canonical LPS: x index 0 is the patient's right, shown on the picture's left; superior up
    return [("axial", hu[z], lab[z], sy, sx, ("R", "L", "A", "P")),
            ("coronal", hu[::-1, y], lab[::-1, y], sz, sx, ("R", "L", "S", "I")),
            ("sagittal", hu[::-1, :, x], lab[::-1, :, x], sz, sy, ("A", "P", "S", "I"))]


def report_picture(result, report: dict, views=None):
    """report.png as a PIL image (``views``: :func:`ct_views` when already computed)."""
    page = Page(*(CT_PAGE if result.image.modality == CT else CXR_PAGE))
    _header(page, report)
    if result.image.modality == CT:
        _ct_panels(page, views or ct_views(result.image, result.labels), report)
    else:
        _cxr_panels(page, result, report)
    return page.image


def save_report_png(result, report: dict, path, views=None) -> None:
    report_picture(result, report, views).save(str(path), format="PNG", compress_level=1)


def _header(page, report):
    model = report.get("model") or {}
    version = f" v{model['version']}" if model.get("version") else ""
    page.text((16, 12), report.get("case") or "case", 30, bold=True)
    subtitle = (f"{report['modality']}  |  engine {report['engine']}  |  model {model.get('name') or ''}{version}  |  "
                f"LungSeg {report.get('lungseg_version', '')}  |  {report.get('input', '')}")
    page.text((16, 56), subtitle[:150], 15, fill=(70, 70, 70))
    flags = report.get("qc", {}).get("flags", [])
    right = page.image.width - 16
    if flags:
        page.label((right, 16), "QC flags: " + ", ".join(flags), 16, fill="white")
    else:
        page.text((right, 16), "QC flags: none", 16, bold=True, fill=(0, 120, 0), anchor="ra")


def _view(page, cell, rgb, row_mm, col_mm, title, letters):
    """Paste ``rgb`` at its physical aspect, fitted and centred in ``cell`` (x0, y0, x1, y1); title and
    orientation letters; returns the pasted box."""
    from PIL import Image as PILImage

    x0, y0, x1, y1 = cell
    y0 += 26  # room for the title
    h, w = rgb.shape[:2]
    scale = min((x1 - x0) / (w * col_mm), (y1 - y0) / (h * row_mm))
    size = (max(1, int(w * col_mm * scale)), max(1, int(h * row_mm * scale)))
    picture = PILImage.fromarray(rgb).resize(size, PILImage.NEAREST if size[0] > 2 * w else PILImage.BILINEAR)
    left, top = int(x0 + (x1 - x0 - size[0]) / 2), int(y0 + (y1 - y0 - size[1]) / 2)
    page.image.paste(picture, (left, top))
    right, bottom = left + size[0], top + size[1]
    page.text(((left + right) / 2, top - 6), title, 17, anchor="md")
    yellow = (255, 230, 0)
    for xy, letter, anchor in (((left + 6, (top + bottom) / 2), letters[0], "lm"),
                               ((right - 6, (top + bottom) / 2), letters[1], "rm"),
                               (((left + right) / 2, top + 4), letters[2], "ma"),
                               (((left + right) / 2, bottom - 4), letters[3], "md")):
        if letter:
            page.text(xy, letter, 17, bold=True, fill=yellow, anchor=anchor)
    return left, top, right, bottom


def _legend(page, box):
    left, bottom = box[0] + 8, box[3] - 8
    page.draw.rectangle((left, bottom - 52, left + 120, bottom), fill=(235, 235, 235), outline=(160, 160, 160))
    for i, (name, colour) in enumerate((("Right lung", RIGHT_RGB), ("Left lung", LEFT_RGB))):
        y = bottom - 44 + 22 * i
        page.draw.rectangle((left + 8, y, left + 30, y + 14), fill=colour)
        page.text((left + 38, y + 7), name, 14, anchor="lm")


def _ct_panels(page, views, report):
    cells = [(16 + 385 * i, 84, 16 + 385 * i + 370, 520) for i in range(3)]
    for i, (cell, (name, hu, lab, row_mm, col_mm, letters)) in enumerate(zip(cells, views)):
        box = _view(page, cell, outlined(grey(hu, *WINDOW_HU), lab, fill=0.18), row_mm, col_mm, name, letters)
        if i == 0:
            _legend(page, box)
    _ct_table(page, (1180, 100), report)
    regions = report.get("regions")
    if not regions:
        return
    hist = regions["histogram"]
    edges = hist["edges_hu"]
    centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    series = [(centres, hist[s], COLOURS[s], f"{s} lung") for s in ("right", "left")]
    line_plot(page, (80, 600, 600, 870), series, (edges[0], edges[-1]),
              (0.0, padded(hist["right"] + hist["left"] + [0.0])[1]), "HU histogram (mL per 10 HU bin)",
              "HU  (dashed: aeration bands -900 / -500 / -100)", vlines=(-900, -500, -100), legend=(592, 608, "r"))
    depth = regions["profile"]["depth_mm"]
    extent = regions["level_thickness_mm"] * regions["levels"]
    for i, (key, title) in enumerate((("weight_g", "tissue weight per level (g)"),
                                      ("gas_fraction", "gas fraction per level"),
                                      ("mean_hu", "mean HU per level"))):
        structures = ("right", "left") if key == "weight_g" else ("right", "left", "both")
        series = [(regions["profile"][s][key], depth, COLOURS[s], s) for s in structures]
        values = [v for s in series for v in s[0]]
        line_plot(page, (760 + 290 * i, 600, 990 + 290 * i, 870), series, padded(values), (0.0, extent or 1.0),
                  title, invert_y=True, markers=True, legend=(990 + 290 * i - 6, 606, "r") if i == 1 else None)
    page.text((715, 690), "depth (mm)\nbelow the\nmost ventral\nlung voxel\n\nventral\nat the top", 12,
              fill=(70, 70, 70), anchor="ra", align="right")
    page.text((16, 930), f"Ventral->dorsal profile: {regions['levels']} levels of {regions['level_thickness_mm']:.1f} mm "
              f"along the patient's anterior->posterior axis, ventral at the top. Position {regions['position']} "
              f"({regions['position_source']}); dependent side: {regions['dependent_side']}.", 13, fill=(70, 70, 70))


def _ct_table(page, xy, report):
    """Per-lung numbers as one monospace block."""
    s = report["structures"]
    rows = [("volume (mL)", "volume_ml", "{:.0f}"), ("weight (g)", "weight_g", "{:.0f}"),
            ("gas volume (mL)", "gas_volume_ml", "{:.0f}"), ("mean HU", "mean_hu", "{:.0f}"),
            ("non-aerated", "non_aerated_volume_fraction", "{:.1%}"),
            ("poorly aerated", "poorly_aerated_volume_fraction", "{:.1%}"),
            ("normally aerated", "normally_aerated_volume_fraction", "{:.1%}"),
            ("over-aerated", "over_aerated_volume_fraction", "{:.1%}")]
    lines = [f"{'':<16}{'right':>7}{'left':>7}{'both':>7}"]
    for label, key, fmt in rows:
        lines.append(f"{label:<16}" + "".join(f"{fmt.format(s[k][key]):>7}" for k in ("right", "left", "both")))
        if key == "mean_hu":
            lines.append("% of volume:")
    x, y = xy
    ratio = report.get("qc", {}).get("right_left_volume_ratio")
    page.text((x, y), "Lungs" + (f"  (right/left volume {ratio:.2f})" if ratio else ""), 19, bold=True)
    page.text((x, y + 38), "\n".join(lines), 15, mono=True, spacing=9)
    page.text((x, y + 370), f"weight: gas/tissue model, {report['method']['density_g_per_ml']} g/mL\n"
              "bands: < -900, -900..-500, -500..-100, >= -100 HU", 13, fill=(70, 70, 70))


def _cxr_panels(page, result, report):
    arr = result.image.array
    lo, hi = np.percentile(arr, (0.5, 99.5))
    sx, sy = result.image.spacing[:2]
    box = _view(page, (16, 84, 820, 810), outlined(grey(arr, lo, hi), result.labels.array, fill=0.15), sy, sx,
                "radiograph", ("R", "L", "", ""))
    _legend(page, box)
    s = report["structures"]
    known = s["both"].get("area_cm2") is not None
    lines = [f"{'':<14}{'right':>9}{'left':>9}{'both':>9}",
             f"{'area (pixels)':<14}" + "".join(f"{s[k]['pixel_count']:>9,}" for k in ("right", "left", "both"))]
    if known:
        lines.append(f"{'area (cm2)':<14}" + "".join(f"{s[k]['area_cm2']:>9.1f}" for k in ("right", "left", "both")))
    page.text((880, 120), "Projected lung area", 19, bold=True)
    page.text((880, 160), "\n".join(lines), 15, mono=True, spacing=9)
    ratio = report.get("right_left_area_ratio")
    page.text((880, 280), f"right/left area ratio: {ratio:.2f}" if ratio else "right/left area ratio: n/a", 17)
    notes = ([] if known else ["pixel spacing unknown: no cm2"]) + ["a single projection gives no volume or weight"]
    page.text((880, 320), "\n".join(notes), 14, fill=(70, 70, 70))
