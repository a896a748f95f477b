"""The per-case picture people look at instead of reading: report.png.

CT: axial / coronal / sagittal views through the lungs with the right and left lung outlined and a legend,
the case, engine, model, per-lung volume and weight, QC flags, the HU histograms and the ventral->dorsal
profile (tissue weight, gas fraction and mean HU per level). Radiographs: the overlay with the areas and the
right/left ratio. Drawn with matplotlib's object API (no pyplot: no global state, safe in a batch or in Slicer).
"""

from __future__ import annotations

import numpy as np

from .image import CT, to_canonical

RIGHT_RGB, LEFT_RGB = (64, 200, 64), (255, 170, 30)  # the outline colours of overlay.png
COLOURS = {"right": tuple(c / 255 for c in RIGHT_RGB), "left": tuple(c / 255 for c in LEFT_RGB),
           "both": (0.35, 0.35, 0.35)}
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


def report_figure(result, report: dict, views=None):
    """The matplotlib Figure of report.png (``views``: :func:`ct_views` when already computed)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 9.6) if result.image.modality == CT else (14, 8), dpi=100)
    _header(fig, report)
    if result.image.modality == CT:
        _ct_panels(fig, views or ct_views(result.image, result.labels), report)
    else:
        _cxr_panels(fig, result, report)
    return fig


def save_report_png(result, report: dict, path, views=None) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = report_figure(result, report, views)
    FigureCanvasAgg(fig)
    fig.savefig(str(path), format="png", pil_kwargs={"compress_level": 1})


def _header(fig, report):
    model = report.get("model") or {}
    name = model.get("name") or ""
    version = f" v{model['version']}" if model.get("version") else ""
    fig.text(0.01, 0.985, report.get("case") or "case", fontsize=20, weight="bold", va="top")
    fig.text(0.01, 0.945, f"{report['modality']}  |  engine {report['engine']}  |  model {name}{version}  |  "
             f"LungSeg {report.get('lungseg_version', '')}  |  {report.get('input', '')}"[:170], fontsize=11,
             va="top", color="0.25")
    flags = report.get("qc", {}).get("flags", [])
    text = "QC flags: " + (", ".join(flags) if flags else "none")
    fig.text(0.99, 0.985, text, fontsize=12, va="top", ha="right", weight="bold",
             color="white" if flags else "darkgreen",
             bbox={"facecolor": "firebrick", "edgecolor": "none", "pad": 4} if flags else None)


def _legend(fig, box):
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(facecolor=COLOURS["right"], label="Right lung"),
                        Patch(facecolor=COLOURS["left"], label="Left lung")],
               loc="lower left", bbox_to_anchor=(box.x0, box.y0), fontsize=10, framealpha=0.85)


def _view(fig, spec, rgb, row_mm, col_mm, title, letters):
    """Draw ``rgb`` at its physical aspect, fitted and centred in the grid cell ``spec``, as raw pixels
    (figimage: no axes, no resampling by matplotlib); returns the box it occupies (figure fraction)."""
    from matplotlib.transforms import Bbox
    from PIL import Image as PILImage

    cell = spec.get_position(fig)
    width_px, height_px = fig.get_figwidth() * fig.dpi, fig.get_figheight() * fig.dpi
    h, w = rgb.shape[:2]
    scale = min(cell.width * width_px / (w * col_mm), cell.height * height_px / (h * row_mm))
    size = (max(1, int(w * col_mm * scale)), max(1, int(h * row_mm * scale)))
    picture = PILImage.fromarray(rgb).resize(size, PILImage.NEAREST if size[0] > 2 * w else PILImage.BILINEAR)
    x0 = cell.x0 + (cell.width - size[0] / width_px) / 2
    y0 = cell.y0 + (cell.height - size[1] / height_px) / 2
    fig.figimage(np.asarray(picture), xo=int(x0 * width_px), yo=int(y0 * height_px), origin="upper")
    box = Bbox.from_bounds(x0, y0, size[0] / width_px, size[1] / height_px)
    fig.text((box.x0 + box.x1) / 2, box.y1 + 0.006, title, ha="center", va="bottom", fontsize=13)
    style = {"color": "yellow", "fontsize": 12, "weight": "bold"}
    mid_x, mid_y = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    fig.text(box.x0 + 0.004, mid_y, letters[0], va="center", **style)
    fig.text(box.x1 - 0.004, mid_y, letters[1], va="center", ha="right", **style)
    fig.text(mid_x, box.y1 - 0.006, letters[2], va="top", ha="center", **style)
    fig.text(mid_x, box.y0 + 0.006, letters[3], va="bottom", ha="center", **style)
    return box


def _ct_panels(fig, views, report):
    grid = fig.add_gridspec(2, 4, left=0.02, right=0.99, top=0.89, bottom=0.1, hspace=0.2, wspace=0.12,
                            height_ratios=(1.3, 1.0), width_ratios=(1, 1, 1, 1.2))
    for i, (name, hu, lab, row_mm, col_mm, letters) in enumerate(views):
        box = _view(fig, grid[0, i], outlined(grey(hu, *WINDOW_HU), lab, fill=0.18), row_mm, col_mm, name, letters)
        if i == 0:
            _legend(fig, box)
    _ct_table(fig, grid[0, 3].get_position(fig), report)
    regions = report.get("regions")
    if not regions:
        return
    bottom = grid[1, :].subgridspec(1, 5, wspace=0.42, width_ratios=(0.07, 2.2, 1, 1, 1))
    _histogram(fig.add_subplot(bottom[0, 1]), regions["histogram"])
    depth = regions["profile"]["depth_mm"]
    for col, (key, label) in enumerate((("weight_g", "tissue weight per level (g)"),
                                        ("gas_fraction", "gas fraction per level"),
                                        ("mean_hu", "mean HU per level"))):
        ax = fig.add_subplot(bottom[0, col + 2])
        for structure in ("right", "left", "both"):
            values = regions["profile"][structure][key]
            if key == "weight_g" and structure == "both":
                continue  # right + left; its scale would flatten the two lungs
            ax.plot(values, depth, "o-", color=COLOURS[structure], label=structure, ms=4, lw=1.8)
        ax.invert_yaxis()
        _style(ax, label)
        if col == 0:
            ax.set_ylabel(f"depth below most ventral lung (mm)\nventral (top) -> dorsal; dependent: "
                          f"{regions['dependent_side']}", fontsize=10)
        if col == 1:
            ax.legend(fontsize=9)
    fig.text(0.01, 0.006, f"Profile: {regions['levels']} levels of {regions['level_thickness_mm']:.1f} mm along the "
             f"patient's anterior->posterior axis. Position {regions['position']}: "
             f"{regions['position_source']}.", fontsize=9.5, color="0.3")


def _ct_table(fig, cell, report):
    """Per-lung numbers as one monospace text block (a matplotlib table costs a text object per cell)."""
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
    def at(x, y):
        return cell.x0 + x * cell.width, cell.y0 + y * cell.height

    fig.text(*at(0.04, 0.93), "\n".join(lines), family="monospace", fontsize=11.5, va="top", linespacing=1.5)
    ratio = report.get("qc", {}).get("right_left_volume_ratio")
    fig.text(*at(0.04, 1.0), "Lungs" + (f"  (right/left volume {ratio:.2f})" if ratio else ""), fontsize=14,
             weight="bold", va="top")
    fig.text(*at(0.04, 0.12), f"weight: gas/tissue model, {report['method']['density_g_per_ml']} g/mL\n"
             "bands: < -900, -900..-500, -500..-100, >= -100 HU", fontsize=10, color="0.3", va="top")


def _style(ax, title):
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title, fontsize=11, y=1.0, pad=4)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_locator(MaxNLocator(6))


def _histogram(ax, hist):
    edges = np.asarray(hist["edges_hu"])
    centres = (edges[:-1] + edges[1:]) / 2
    for structure in ("right", "left"):
        ax.plot(centres, hist[structure], color=COLOURS[structure], lw=1.8, label=f"{structure} lung")
    for cut in (-900, -500, -100):
        ax.axvline(cut, color="0.6", lw=0.8, ls="--")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel("HU (10 HU bins; dashed: aeration bands -900 / -500 / -100)", fontsize=10)
    ax.set_ylabel("volume per bin (mL)", fontsize=10)
    _style(ax, "HU histogram")
    ax.legend(fontsize=9)


def _cxr_panels(fig, result, report):
    grid = fig.add_gridspec(1, 2, left=0.02, right=0.98, top=0.87, bottom=0.04, width_ratios=(1.3, 1), wspace=0.05)
    arr = result.image.array
    lo, hi = np.percentile(arr, (0.5, 99.5))
    sx, sy = result.image.spacing[:2]
    box = _view(fig, grid[0, 0], outlined(grey(arr, lo, hi), result.labels.array, fill=0.15), sy, sx,
                "radiograph", ("R", "L", "", ""))
    _legend(fig, box)
    text_ax = fig.add_subplot(grid[0, 1])
    text_ax.axis("off")
    s = report["structures"]
    known = s["both"].get("area_cm2") is not None
    cells = [[f"{s[k]['pixel_count']:,}" for k in ("right", "left", "both")]]
    labels = ["area (pixels)"]
    if known:
        cells.append([f"{s[k]['area_cm2']:.1f}" for k in ("right", "left", "both")])
        labels.append("area (cm2)")
    table = text_ax.table(cellText=cells, rowLabels=labels, colLabels=["right", "left", "both"], loc="upper center",
                          colWidths=[0.22] * 3)
    table.auto_set_font_size(False)
    table.set_fontsize(12)
    table.scale(1.0, 2.2)
    ratio = report.get("right_left_area_ratio")
    text_ax.set_title("Projected lung area", fontsize=13)
    text_ax.text(0.5, 0.55, f"right/left area ratio: {ratio:.2f}" if ratio else "right/left area ratio: n/a",
                 ha="center", fontsize=13, transform=text_ax.transAxes)
    if not known:
        text_ax.text(0.5, 0.47, "pixel spacing unknown: no cm2", ha="center", fontsize=11, color="firebrick",
                     transform=text_ax.transAxes)
    text_ax.text(0.5, 0.38, "a single projection gives no volume or weight", ha="center", fontsize=10,
                 color="0.35", transform=text_ax.transAxes)
