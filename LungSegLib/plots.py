"""Small raster drawing for report.png: text and line plots drawn with Pillow on one page.

Why not matplotlib figures: a matplotlib page with four plots costs about 0.4 s of CPU per case (axes,
ticks and text layout), which made a batch of 100 small CTs 16 times slower; this page costs a few tens of
milliseconds. matplotlib still provides the fonts (DejaVu, shipped with it) and the tick positions
(:class:`matplotlib.ticker.MaxNLocator`).
"""

from __future__ import annotations

import math
from functools import lru_cache

GREY = (90, 90, 90)
GRID = (225, 225, 225)


@lru_cache(maxsize=None)
def font(size: int, bold: bool = False, mono: bool = False):
    import os

    import matplotlib
    from PIL import ImageFont

    name = "DejaVuSans" + ("Mono" if mono else "") + ("-Bold" if bold else "") + ".ttf"
    return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name), size)


class Page:
    """A white RGB page with text helpers."""

    def __init__(self, width: int, height: int):
        from PIL import Image, ImageDraw

        self.image = Image.new("RGB", (width, height), "white")
        self.draw = ImageDraw.Draw(self.image)

    def text(self, xy, text, size=14, bold=False, mono=False, fill=(0, 0, 0), anchor="la", spacing=6,
             align="left"):
        self.draw.multiline_text(xy, str(text), font=font(size, bold, mono), fill=fill, anchor=anchor,
                                 spacing=spacing, align=align)

    def text_width(self, text, size=14, bold=False, mono=False) -> float:
        return self.draw.textlength(str(text), font=font(size, bold, mono))

    def label(self, xy, text, size=14, fill=(0, 0, 0), box=(200, 30, 30)):
        """Bold text on a coloured box (QC flags)."""
        x0, y0, x1, y1 = self.draw.textbbox(xy, text, font=font(size, True), anchor="ra")
        self.draw.rectangle((x0 - 6, y0 - 4, x1 + 6, y1 + 4), fill=box)
        self.text(xy, text, size, True, fill=fill, anchor="ra")


def ticks(lo: float, hi: float, n: int = 5) -> list:
    from matplotlib.ticker import MaxNLocator

    if hi <= lo:
        hi = lo + 1.0
    return [t for t in MaxNLocator(n).tick_values(lo, hi) if lo - 1e-9 <= t <= hi + 1e-9]


def tick_text(value: float, step: float) -> str:
    decimals = max(0, -int(math.floor(math.log10(step)))) if step > 0 else 0
    return f"{value:.{decimals}f}"


def padded(values, pad=0.06) -> tuple:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    span = (hi - lo) or (abs(hi) or 1.0)
    return lo - pad * span, hi + pad * span


def line_plot(page: Page, box, series, xlim, ylim, title="", xlabel="", invert_y=False, markers=False,
              vlines=(), legend=None):
    """Axes in ``box`` (x0, y0, x1, y1 pixels) with ``series``: (xs, ys, colour, label)."""
    x0, y0, x1, y1 = box
    draw = page.draw

    def px(x, y):
        fx = (x - xlim[0]) / (xlim[1] - xlim[0])
        fy = (y - ylim[0]) / (ylim[1] - ylim[0])
        return x0 + fx * (x1 - x0), (y0 + fy * (y1 - y0)) if invert_y else (y1 - fy * (y1 - y0))

    xt, yt = ticks(*xlim, 4), ticks(*ylim, 6)
    for t in xt:
        draw.line((px(t, ylim[0])[0], y0, px(t, ylim[0])[0], y1), fill=GRID)
        page.text((px(t, ylim[0])[0], y1 + 5), tick_text(t, xt[1] - xt[0] if len(xt) > 1 else 1), 12,
                  fill=GREY, anchor="ma")
    for t in yt:
        y = px(xlim[0], t)[1]
        draw.line((x0, y, x1, y), fill=GRID)
        page.text((x0 - 6, y), tick_text(t, yt[1] - yt[0] if len(yt) > 1 else 1), 12, fill=GREY, anchor="rm")
    for v in vlines:
        x = px(v, ylim[0])[0]
        for y in range(int(y0), int(y1), 8):
            draw.line((x, y, x, min(y + 4, y1)), fill=(150, 150, 150))
    for xs, ys, colour, _ in series:
        points = [px(x, y) for x, y in zip(xs, ys)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2, joint="curve")
        if markers:
            for x, y in points:
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
    draw.rectangle(box, outline=(60, 60, 60))
    page.text(((x0 + x1) / 2, y0 - 8), title, 15, anchor="md")
    if xlabel:
        page.text(((x0 + x1) / 2, y1 + 24), xlabel, 13, anchor="ma")
    if legend:
        _legend(page, legend, series)


def _legend(page: Page, corner, series):
    """Labels of ``series`` in a box whose top-left or top-right corner is ``corner`` = (x, y, 'l'|'r')."""
    x, y, side = corner
    width = max(page.text_width(label, 12) for _, _, _, label in series) + 40
    left = x if side == "l" else x - width
    page.draw.rectangle((left, y, left + width, y + 8 + 18 * len(series)), fill="white", outline=(200, 200, 200))
    for i, (_, _, colour, label) in enumerate(series):
        yy = y + 13 + 18 * i
        page.draw.line((left + 8, yy, left + 28, yy), fill=colour, width=3)
        page.text((left + 34, yy), label, 12, anchor="lm")
