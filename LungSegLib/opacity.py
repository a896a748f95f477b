"""Synthetic lung opacities on radiographs, for training and for stress tests (label kept as lung).

Pneumonia, COVID-19, ARDS and edema make lung as bright as soft tissue on a radiograph; a network that
has only seen aerated lung learns "bright = not lung" and drops the opaque lung, exactly the lung a
severity score is about. These functions paint smooth opacity fields *inside* the lung mask of a
radiograph in model units (0 = black air, 1 = brightest bone), pulling pixels toward the soft-tissue
brightness of the same film, so ribs and vessels fade but do not vanish, as on a real film.

Families (``FAMILIES``): ``patchy`` (multifocal, peripheral and lower predominance), ``basal`` (lower-zone
white-out with an undulating upper edge, one or both lungs), ``haze`` (diffuse ground glass),
``hemithorax`` (one lung white from the base to 75 % of its height or more: a massive effusion, collapse
or consolidation, where the lung's outline must be inferred from the chest wall and the other side) and
``lobar`` (a whole zone of one lung bounded by a straight fissure-like edge). ``HELD_OUT`` families are
never used in training, so a stress test on them measures how the model generalises, not what it learned.
``portable_look`` adds the AP bedside look: lower contrast, ECG leads and wires, electrode discs.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FAMILIES = ("patchy", "basal", "haze", "hemithorax", "lobar")
HELD_OUT = ("lobar",)
TRAINED = tuple(f for f in FAMILIES if f not in HELD_OUT)


def _lung_sides(lungs: np.ndarray) -> list:
    """The two largest lung components (one, if the mask has one), largest first."""
    lab, n = ndimage.label(lungs)
    if n == 0:
        return []
    sizes = np.bincount(lab.ravel())[1:]
    return [lab == (i + 1) for i in np.argsort(sizes)[::-1][:2]]


def _smooth_noise(shape, rng, sigma: float) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return f / (f.std() + 1e-6)


def opacity_field(family: str, lungs: np.ndarray, rng) -> np.ndarray:
    """Opacity strength in [0, 1] per pixel, zero outside ``lungs`` (a 2D bool mask)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown opacity family {family!r}; expected one of {FAMILIES}")
    h, w = lungs.shape
    field = np.zeros(lungs.shape, np.float32)
    sides = _lung_sides(lungs)
    if not sides:
        return field
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    scale = max(h, w) / 256.0
    if family == "patchy":
        idx = np.flatnonzero(lungs)
        dist = ndimage.distance_transform_edt(lungs).ravel()[idx]
        low = (yy.ravel()[idx] - yy.ravel()[idx].min()) / (np.ptp(yy.ravel()[idx]) + 1)
        weight = (1.0 / (1.0 + dist / (6 * scale))) * (0.4 + low)  # peripheral and lower predominance
        weight /= weight.sum()
        for _ in range(int(rng.integers(3, 12))):
            k = idx[rng.choice(idx.size, p=weight)]
            cy, cx = divmod(int(k), w)
            sy, sx = rng.uniform(6, 22, 2) * scale
            blob = np.exp(-0.5 * (((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))
            field = np.maximum(field, rng.uniform(0.6, 1.0) * blob)
        field *= np.clip(1.0 + 0.25 * _smooth_noise(lungs.shape, rng, 4 * scale), 0.5, 1.5)
    elif family == "basal":
        chosen = sides if rng.random() < 0.6 else [sides[int(rng.integers(len(sides)))]]
        for side in chosen:
            rows = np.nonzero(side.any(1))[0]
            top, bottom = rows.min(), rows.max()
            level = bottom - rng.uniform(0.2, 0.7) * (bottom - top)
            edge = level + 8 * scale * _smooth_noise((1, w), rng, 10 * scale)[0]
            soft = rng.uniform(3, 12) * scale
            field = np.maximum(field, side / (1.0 + np.exp(-(yy - edge[None, :]) / soft)))
    elif family == "hemithorax":  # one whole side (or all but its apex) white, an effusion's meniscus
        side = sides[int(rng.integers(len(sides)))]
        rows, cols = np.nonzero(side.any(1))[0], np.nonzero(side.any(0))[0]
        top, bottom = rows.min(), rows.max()
        level = bottom - rng.uniform(0.75, 1.1) * (bottom - top)
        centre = (cols.min() + cols.max()) / 2.0
        outward = (centre - xx[0]) if centre < w / 2 else (xx[0] - centre)  # toward this side's chest wall
        lateral = np.clip(outward / (np.ptp(cols) / 2.0 + 1), 0.0, 1.0)
        edge = level - rng.uniform(0, 12) * scale * lateral + 5 * scale * _smooth_noise((1, w), rng, 10 * scale)[0]
        soft = rng.uniform(2, 8) * scale
        field = rng.uniform(0.85, 1.0) * side / (1.0 + np.exp(-(yy - edge[None, :]) / soft))
    elif family == "haze":
        base = rng.uniform(0.25, 0.55)
        gradient = 1.0 + rng.uniform(-0.4, 0.6) * (yy - h / 2) / h
        field = base * gradient * np.clip(1.0 + 0.3 * _smooth_noise(lungs.shape, rng, 12 * scale), 0.4, 1.6)
    else:  # lobar: one zone of one lung behind a straight fissure-like edge
        side = sides[int(rng.integers(len(sides)))]
        ys, xs = np.nonzero(side)
        angle = rng.uniform(-0.6, 0.6) + (0.0 if rng.random() < 0.5 else np.pi)
        ny, nx = np.cos(angle), np.sin(angle)
        proj = (ys - ys.mean()) * ny + (xs - xs.mean()) * nx
        cut = np.quantile(proj, rng.uniform(0.3, 0.7))
        signed = ((yy - ys.mean()) * ny + (xx - xs.mean()) * nx - cut) / (1.5 * scale)
        field = rng.uniform(0.75, 1.0) / (1.0 + np.exp(-signed)) * side
    field = ndimage.gaussian_filter(field.astype(np.float32), 1.5 * scale)
    return np.clip(field, 0.0, 1.0) * lungs


def paint_opacity(image: np.ndarray, field: np.ndarray, rng, strength=(0.65, 1.0)) -> np.ndarray:
    """Pull ``image`` (model units) toward the film's soft-tissue brightness where ``field`` is high."""
    tissue = float(np.quantile(image, rng.uniform(0.8, 0.95)))
    s = rng.uniform(*strength)
    texture = 1.0 + 0.08 * _smooth_noise(image.shape, rng, 2.0)
    target = np.maximum(tissue * texture, image)  # opacity only brightens
    return (image + s * field * (target - image)).astype(image.dtype)


def portable_look(image: np.ndarray, rng) -> np.ndarray:
    """AP bedside film: compressed contrast, raised background, ECG leads and electrode discs."""
    out = image * rng.uniform(0.6, 0.9) + rng.uniform(0.05, 0.2)
    h, w = image.shape
    bright = float(np.quantile(image, 0.995))
    for _ in range(int(rng.integers(0, 4))):  # wires: smooth random curves
        t = np.linspace(0, 1, 200)
        y = rng.uniform(0, h) + np.cumsum(rng.normal(0, 2.5, t.size))
        x = rng.uniform(0, w) + np.cumsum(rng.normal(0, 2.5, t.size))
        ok = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        out[y[ok].astype(int), x[ok].astype(int)] = bright
    yy, xx = np.ogrid[0:h, 0:w]
    for _ in range(int(rng.integers(0, 4))):  # electrode discs
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, 7) * max(h, w) / 256.0
        out[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = bright
    return np.clip(out, 0.0, 1.0).astype(image.dtype)


def add_opacity(image: np.ndarray, lungs: np.ndarray, rng, families=TRAINED) -> tuple:
    """One random family painted into ``image``: returns (new image, family, field)."""
    family = families[int(rng.integers(len(families)))]
    field = opacity_field(family, lungs, rng)
    return paint_opacity(image, field, rng), family, field


try:  # MONAI dictionary transform for the training pipeline
    from monai.transforms import MapTransform, RandomizableTransform
    from monai.utils import convert_to_numpy

    class RandOpacityd(RandomizableTransform, MapTransform):
        """With probability ``prob`` paint an opacity of one of ``families`` into ``keys[0]`` inside
        ``label_key`` (label unchanged); with ``portable_prob`` add the AP portable look."""

        def __init__(self, keys, label_key: str, prob: float = 0.5, families=TRAINED, portable_prob=0.2):
            MapTransform.__init__(self, keys)
            RandomizableTransform.__init__(self, prob)
            self.label_key, self.families, self.portable_prob = label_key, tuple(families), portable_prob

        def __call__(self, data):
            import torch

            d = dict(data)
            self.randomize(None)
            rng = np.random.default_rng(int(self.R.randint(0, 2**31 - 1)))
            key = self.keys[0]
            img = d[key]
            arr = convert_to_numpy(img)[0]
            lungs = convert_to_numpy(d[self.label_key])[0] > 0
            new = arr
            if self._do_transform and lungs.any() and self.families:
                new = add_opacity(new, lungs, rng, self.families)[0]
            if rng.random() < self.portable_prob:
                new = portable_look(new, rng)
            if new is not arr:
                d[key] = torch.as_tensor(new[None], dtype=img.dtype) if isinstance(img, torch.Tensor) \
                    else new[None].astype(arr.dtype)
            return d
except ImportError:  # pragma: no cover - monai is a dependency of training
    RandOpacityd = None
