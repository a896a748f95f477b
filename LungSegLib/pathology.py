"""CT pathology simulator: dense lung painted inside the true lung mask, label kept as lung.

Networks trained on aerated lung learn "dense = not lung" and drop the heaviest lung. Eight families of
dense patterns (:data:`FAMILIES`) teach and test the opposite; :data:`HELD_OUT` ones never enter training,
so the robustness benchmark (``bench/dense_lung_stress.py``) measures how the models travel to patterns
they never saw. Each family ranks the lung voxels by a score (a physical shape plus a smooth random field)
and paints the top ``fraction`` of them, so the dense fraction is exact to one voxel whatever the shape.

Grid: HU on the canonical LPS voxel grid, numpy order (z, y, x): x grows to the patient's left, y to
posterior (dorsal = larger y), z to superior; ``spacing`` in mm in the same (z, y, x) order. A single
slice is an array of shape (1, y, x). Smooth random fields are sums of random plane waves evaluated only
at lung voxels (no full-volume filtering), which keeps a training call on a 96^3 crop in tens of ms.
Scanner variation (:func:`acquisition`) lives in ``acquisition.py`` and is re-exported here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .acquisition import AIR_HU, acquisition  # noqa: F401 (part of this module's API)
from .augment import DENSE_HU
from .errors import LungSegError

FAMILIES = ("dependent", "lobar", "patchy", "ground_glass", "perihilar", "subpleural", "mixed", "scattered")
HELD_OUT = ("perihilar", "mixed", "scattered")  # never trained on: the benchmark measures generalisation on them
TRAINED = tuple(f for f in FAMILIES if f not in HELD_OUT)
FAMILY_TEXT = {
    "dependent": "dependent (gravitational) consolidation with an undulating upper border (ARDS)",
    "lobar": "lobar/segmental consolidation: wedges from the hilum to the pleura bounded by planes",
    "patchy": "multifocal patchy consolidation, peripheral predominance, 5-40 mm patches",
    "ground_glass": "diffuse ground glass -700..-300 HU over large regions, vessels kept",
    "perihilar": "perihilar (bat-wing) edema: dense centre fading to ground glass, periphery spared",
    "subpleural": "subpleural / effusion-adjacent compressive atelectasis along posterior and lateral pleura",
    "mixed": "mixed: ground glass around consolidation with air bronchograms (airways stay dark)",
    "scattered": "multifocal consolidation without zonal predilection, 10-50 mm patches anywhere in the lung",
}
GROUND_GLASS_HU = (-700.0, -300.0)


def describe(families=TRAINED) -> str:
    """One line for model cards: the families used and the held-out ones."""
    held = [f for f in HELD_OUT if f not in families]
    return ("simulated pathology (LungSegLib.pathology): " + ", ".join(families)
            + (f"; held out of training: {', '.join(held)}" if held else ""))


# ------------------------------------------------------------------------------------ lung geometry
class _Lung:
    """Lung voxel coordinates in mm and the per-side anatomy the families need (hilum, lateral side)."""

    def __init__(self, lungs: np.ndarray, spacing):
        self.shape, self.spacing = lungs.shape, np.asarray(spacing, np.float32)
        self.idx = np.flatnonzero(lungs)
        zyx = np.unravel_index(self.idx, lungs.shape)
        self.p = np.empty((3, self.idx.size), np.float32)  # (z, y, x) mm, one contiguous row per axis
        for a in range(3):
            np.multiply(zyx[a], self.spacing[a], out=self.p[a], casting="unsafe")
        values = lungs.ravel()[self.idx]
        if values.dtype != bool and values.max() == 2 and values.min() == 1:  # sided: 1 right, 2 left
            self.left = values == 2
        else:                                           # split at the mean x of the lung voxels
            self.left = self.p[2] > self.p[2].mean()
        self.planar = lungs.shape[0] == 1
        self.side = self.left.astype(np.intp)
        count = np.maximum(np.bincount(self.side, minlength=2), 1)
        self.hila = np.zeros((3, 2), np.float32)        # (z, y, x) of the right (0) and left (1) hilum
        for a in (0, 1):
            self.hila[a] = np.bincount(self.side, self.p[a], minlength=2) / count
        for s in (0, 1):
            x = self.p[2, self.side == s]
            if x.size:  # medial edge: 95th x percentile of the right lung, 5th of the left
                q = int((0.95 if s == 0 else 0.05) * (x.size - 1))
                self.hila[2, s] = np.partition(x, q)[q]

    def field(self, rng, wavelength_mm: float, modes: int = 6, points=None) -> np.ndarray:
        """Smooth random field (about unit variance) at lung voxels: a sum of random plane waves."""
        p = self.p if points is None else points
        out = np.zeros(p.shape[1], np.float32)
        for _ in range(modes):
            k = rng.standard_normal(3)
            if self.planar:
                k[0] = 0.0
            k *= 2 * np.pi / (wavelength_mm * rng.uniform(0.7, 1.4) * np.linalg.norm(k) + 1e-9)
            out += np.cos(k.astype(np.float32) @ p + np.float32(rng.uniform(0, 2 * np.pi)))
        return out / np.float32(np.sqrt(modes / 2.0))

    def hilar_offset(self, axis: int) -> np.ndarray:
        return self.p[axis] - self.hila[axis][self.side]

    def hilar_distance(self, z_weight: float = 1.0) -> np.ndarray:
        d2 = (z_weight * self.hilar_offset(0)) ** 2
        d2 += self.hilar_offset(1) ** 2
        d2 += self.hilar_offset(2) ** 2
        return np.sqrt(d2)

    def peripherality(self) -> np.ndarray:
        """0 at the hilum .. about 1 at the farthest pleura of each side."""
        d = self.hilar_distance()
        q = int(0.99 * (d.size - 1))
        return d / (np.partition(d, q)[q] + 1e-6)


# ------------------------------------------------------------------------------------ family scores
def _dependent(lung, rng, lungs):
    return lung.p[1] + rng.uniform(4, 12) * lung.field(rng, rng.uniform(40, 120))


def _lobar(lung, rng, lungs):
    """Intersection of 2 (lobe, fissure-bounded) or 3-4 (segment) half-spaces opening from the hilum."""
    score = np.full(lung.idx.size, -np.inf, np.float32)
    sides = [False, True] if rng.random() < 0.5 else [bool(rng.random() < 0.5)]
    for left in sides:
        side = lung.left == left
        if not side.any():
            continue
        u = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), (1 if left else -1) * rng.uniform(0.2, 1)])
        if lung.planar:
            u[0] = 0.0
        u /= np.linalg.norm(u)
        w1 = np.cross(u, [1.0, 0, 0] if lung.planar else rng.standard_normal(3))
        w1 /= np.linalg.norm(w1)
        w2 = np.cross(u, w1)
        n_planes = 2 if lung.planar else int(rng.integers(2, 5))
        tilt, turn = rng.uniform(np.radians(40), np.radians(70)), rng.uniform(0, np.pi)
        q = lung.p[:, side] - lung.hila[:, int(left)][:, None]
        s = np.full(q.shape[1], np.inf, np.float32)
        for i in range(n_planes):
            a = turn + np.pi * i if n_planes == 2 else turn + 2 * np.pi * i / n_planes
            n = np.cos(tilt) * u + np.sin(tilt) * (np.cos(a) * w1 + np.sin(a) * w2)
            s = np.minimum(s, n.astype(np.float32) @ q)
        score[side] = s
    return score + 2.0 * lung.field(rng, 50.0, modes=4)


def _patchy(lung, rng, lungs):
    return lung.field(rng, rng.uniform(25, 60), modes=8) + rng.uniform(0.8, 1.5) * lung.peripherality()


def _ground_glass(lung, rng, lungs):
    """Large low-frequency regions, leaning at random to the periphery, the centre or the dependent lung."""
    kind, weight = int(rng.integers(4)), rng.uniform(0, 1.0)
    field = lung.field(rng, rng.uniform(50, 150), modes=10)
    if kind == 0:
        return field + weight * lung.peripherality()
    if kind == 1:
        return field - weight * lung.peripherality()
    if kind == 2:
        return field + weight * lung.p[1] / (np.ptp(lung.p[1]) + 1e-6)
    return field


def _perihilar(lung, rng, lungs):
    d = lung.hilar_distance(z_weight=0.5)
    return -d / (d.max() + 1e-6) + 0.15 * lung.field(rng, rng.uniform(40, 80))


def _subpleural(lung, rng, lungs):
    """Depth below the posterior pleura (per z, x column) and below the lateral pleura (per z, y row; rows
    in front of the side's centre pay their distance to it, so the anterior tip is not a lateral shell)."""
    z, y, x = np.unravel_index(lung.idx, lung.shape)
    inside = lungs > 0
    ny, nx = lung.shape[1], lung.shape[2]
    y_back = ny - 1 - np.argmax(inside[:, ::-1, :], axis=1)          # most posterior lung voxel per column
    depth_post = (y_back[z, x] - y) * lung.spacing[1]
    xmid = int(round(lung.p[2].mean() / lung.spacing[2]))
    xmid = min(max(xmid, 1), nx - 1)
    x_right = np.argmax(inside[:, :, :xmid], axis=2)                  # lateral edge of the right lung
    x_left = nx - 1 - np.argmax(inside[:, :, ::-1][:, :, :nx - xmid], axis=2)
    depth_lat = np.where(x < xmid, x - x_right[z, y], x_left[z, y] - x) * lung.spacing[2]
    anterior = np.maximum(0.0, lung.hila[1][lung.side] - lung.p[1])   # lateral rows count from mid-lung back
    depth = np.minimum(depth_post, rng.uniform(1.0, 2.0) * np.abs(depth_lat) + anterior).astype(np.float32)
    return -depth + rng.uniform(2, 6) * lung.field(rng, rng.uniform(30, 60))


def _mixed(lung, rng, lungs):
    return lung.field(rng, rng.uniform(30, 70), modes=8) + 0.5 * lung.peripherality()


def _scattered(lung, rng, lungs):
    """Patches placed by the random field alone, so some reach the mediastinal and diaphragmatic surfaces
    that the zonal families (posterior, peripheral, subpleural) leave aerated."""
    return lung.field(rng, rng.uniform(20, 60), modes=12)


SCORES = {"dependent": _dependent, "lobar": _lobar, "patchy": _patchy, "ground_glass": _ground_glass,
          "perihilar": _perihilar, "subpleural": _subpleural, "mixed": _mixed, "scattered": _scattered}
CORE_SHARE = {"dependent": (0.6, 1.0), "lobar": (0.85, 1.0), "patchy": (0.8, 1.0), "ground_glass": (0.0, 0.0),
              "perihilar": (0.5, 0.85), "subpleural": (1.0, 1.0), "mixed": (0.35, 0.65), "scattered": (0.7, 1.0)}


# ------------------------------------------------------------------------------------------ painting
def consolidation_hu(lung, rng, points) -> np.ndarray:
    """Dense lung (``augment.DENSE_HU``, -100..+60 HU): random base, smooth 5-15 mm texture and noise."""
    lo, hi = DENSE_HU
    base = rng.uniform(lo + 30, hi - 20)
    tex = rng.uniform(8, 20) * lung.field(rng, rng.uniform(6, 15), modes=8, points=points)
    noise = rng.normal(0, rng.uniform(4, 15), points.shape[1]).astype(np.float32)
    return np.clip(base + tex + noise, lo, hi)


def ground_glass_hu(lung, rng, points, original) -> np.ndarray:
    """Partial filling of the air spaces: HU' = HU (1 - f), so vessels and texture stay (scaled), and the
    parenchyma lands at a target in -700..-300 HU; f varies smoothly in space."""
    parenchyma = min(float(np.median(original)), -600.0)
    target = rng.uniform(*GROUND_GLASS_HU)
    f = (1.0 - target / parenchyma) * (1 + 0.2 * lung.field(rng, rng.uniform(20, 50), modes=4, points=points))
    noise = rng.normal(0, rng.uniform(3, 12), points.shape[1]).astype(np.float32)
    return original * (1 - np.clip(f, 0.05, 0.9)) + noise


def _airways(hu: np.ndarray, core: np.ndarray) -> np.ndarray:
    """Air bronchograms: region voxels that are airway-dark (below -900 HU and 100 HU below the parenchyma)
    in a dark neighbourhood (3-voxel mean 50 HU below the parenchyma, so isolated noise voxels do not
    count), searched in the region's box only."""
    box = ndimage.find_objects(core.astype(np.uint8))[0]
    sub, c = hu[box], core[box]
    parenchyma = float(np.median(sub[c]))
    limit = min(-900.0, parenchyma - 100.0)
    mean = ndimage.uniform_filter(sub, 3 if sub.shape[0] > 2 else (1, 3, 3))
    dark = c & (sub < limit) & (mean < min(-880.0, parenchyma - 50.0))
    out = np.zeros(hu.shape, bool)
    out[box] = dark
    return out


def simulate(family: str, hu, lungs, fraction: float, rng, spacing=(1.0, 1.0, 1.0)):
    """Paint ``family`` over ``fraction`` of the lung voxels -> (new HU float32, region bool).

    ``lungs``: lung mask (bool, or sided labels 1 right / 2 left, which then set the sides). ``region`` is
    the pathology's extent (air bronchograms inside it included), a subset of the lungs holding
    round(fraction x lung voxels) voxels. Inputs are not modified; the same rng seed gives the same result."""
    if family not in SCORES:
        raise LungSegError(f"unknown pathology family {family!r}; expected one of {', '.join(FAMILIES)}")
    hu, lungs = np.asarray(hu), np.asarray(lungs)
    if hu.ndim != 3 or lungs.shape != hu.shape:
        raise LungSegError(f"simulate needs HU and lung arrays of the same (z, y, x) shape (a slice as "
                           f"(1, y, x)); got {hu.shape} and {lungs.shape}")
    if not 0.0 <= fraction <= 1.0:
        raise LungSegError(f"dense fraction {fraction} must be between 0 and 1")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise LungSegError(f"spacing {spacing} must be three positive mm values in (z, y, x) order")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    out = hu.astype(np.float32, copy=True)
    region = np.zeros(hu.shape, bool)
    if lungs.dtype != bool and lungs.max(initial=0) > 2:
        lungs = lungs > 0
    if not lungs.any():
        return out, region
    lung = _Lung(lungs, spacing)
    k = int(round(fraction * lung.idx.size))
    if k == 0:
        return out, region
    score = SCORES[family](lung, rng, lungs)
    order = np.argpartition(-score, k - 1)[:k]
    region.ravel()[lung.idx[order]] = True
    n_core = int(round(rng.uniform(*CORE_SHARE[family]) * k))
    if 0 < n_core < k:  # strongest scores are the consolidated core, the rest its ground-glass fringe
        order = order[np.argpartition(-score[order], n_core - 1)]
    core, fringe = order[:n_core], order[n_core:]
    flat = out.ravel()
    airway = _airways(out, region).ravel() if family == "mixed" else None
    for part, paint in ((fringe, "ground glass"), (core, "dense")):
        if not part.size:
            continue
        at = lung.idx[part]
        new = (ground_glass_hu(lung, rng, lung.p[:, part], flat[at]) if paint == "ground glass"
               else consolidation_hu(lung, rng, lung.p[:, part]))
        flat[at] = new if airway is None else np.where(airway[at], flat[at], new)
    return out, region


# ------------------------------------------------------------------------------------ MONAI transform
try:
    from monai.transforms import MapTransform, RandomizableTransform
    from monai.utils import convert_to_numpy

    class RandPathologyd(RandomizableTransform, MapTransform):
        """With probability ``prob``, paint one pathology family (fraction 0.05..``max_fraction`` of the
        lung in ``label_key``) into ``keys[0]``, then with ``acquisition_prob`` scanner variation.

        Channel-first model-unit arrays (value = (HU - lo) / (hi - lo)), 2D (1, y, x) or 3D (1, z, y, x);
        ``spacing`` (z, y, x) mm of those arrays. Labels are not changed (dense lung stays lung).
        Speed (2-core CPU shared with a training run, load about 5, OMP_NUM_THREADS=1, acquisition_prob
        0.3): median 30 ms (min 20, 90th percentile 48) per call on a (1, 96, 96, 96) LCTSC crop that is
        27 % lung; median 4 ms on a (1, 256, 256) slice."""

        def __init__(self, keys, label_key: str, families=TRAINED, prob: float = 0.6, hu_range=(-1024, 600),
                     max_fraction: float = 0.5, acquisition_prob: float = 0.3, spacing=(2.5, 2.5, 2.5)):
            MapTransform.__init__(self, keys)
            RandomizableTransform.__init__(self, prob)
            unknown = [f for f in families if f not in FAMILIES]
            if unknown or not families:
                raise LungSegError(f"unknown pathology families {unknown}; expected some of {FAMILIES}")
            self.label_key, self.families, self.hu_range = label_key, tuple(families), hu_range
            self.max_fraction, self.acquisition_prob, self.spacing = max_fraction, acquisition_prob, spacing

        def __call__(self, data):
            import torch

            d = dict(data)
            self.randomize(None)
            if not self._do_transform:
                return d
            rng = np.random.default_rng(int(self.R.randint(0, 2**31 - 1)))
            key = self.keys[0]
            img, lab = d[key], d[self.label_key]
            arr, labels = convert_to_numpy(img), convert_to_numpy(lab)
            planar = arr.ndim == 3
            lo, hi = self.hu_range
            hu = arr[0].astype(np.float32) * (hi - lo) + lo
            lungs = np.rint(labels[0]).astype(np.uint8)
            if planar:
                hu, lungs = hu[None], lungs[None]
            spacing = (1.0,) + tuple(self.spacing[-2:]) if planar else tuple(self.spacing)
            if np.count_nonzero(lungs) >= 20:
                family = self.families[int(rng.integers(len(self.families)))]
                hu, _ = simulate(family, hu, lungs, rng.uniform(0.05, self.max_fraction), rng, spacing)
            if rng.random() < self.acquisition_prob:
                hu, _ = acquisition(hu, rng, spacing, keep=lungs > 0)
            new = np.clip((hu - lo) / (hi - lo), 0.0, 1.0)[0 if planar else slice(None)][None]
            if isinstance(img, torch.Tensor):  # a clone keeps a MetaTensor's meta data (affine, history)
                d[key] = img.clone()
                d[key].copy_(torch.from_numpy(np.ascontiguousarray(new)))
            else:
                d[key] = new.astype(arr.dtype)
            return d
except ImportError:  # pragma: no cover - monai is a dependency of training
    RandPathologyd = None
