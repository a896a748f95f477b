"""Synthetic dense lung for CT training and stress tests (label kept as lung).

Edema, consolidation and dependent atelectasis make lung as dense as soft tissue (-100..+60 HU); a
network trained only on aerated lung learns "dense = not lung" and drops the heaviest lung. These
functions paint such patterns inside the lung mask: gravity-dependent bands (posterior = high y index
on the canonical LPS grid, axis -2 of a (y, x) slice or (z, y, x) volume) and random blobs.
Arrays may be in HU or in model units (``hu_range`` given: value = (HU - lo) / (hi - lo)).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

DENSE_HU = (-100.0, 60.0)


def dependent_band(lungs: np.ndarray, fraction: float) -> np.ndarray:
    """The posterior ``fraction`` of the lung voxels (largest y index first), per side of the image."""
    band = np.zeros(lungs.shape, bool)
    if fraction <= 0 or not lungs.any():
        return band
    y = np.nonzero(lungs)[-2]
    cut = np.quantile(y, 1.0 - fraction)
    yy = np.arange(lungs.shape[-2]).reshape((-1, 1))
    band = lungs & (yy >= cut)
    return band


def dependent_band_exact(lungs: np.ndarray, fraction: float, rng=None, smooth: float = 0.0) -> np.ndarray:
    """Posterior band holding exactly ``fraction`` of the lung voxels: ranks voxels by y (plus optional
    smooth random undulation, in voxels) and takes the top ``fraction``."""
    idx = np.flatnonzero(lungs)
    band = np.zeros(lungs.shape, bool)
    k = int(round(fraction * idx.size))
    if k == 0:
        return band
    coords = np.unravel_index(idx, lungs.shape)
    depth = coords[-2].astype(np.float64)
    if smooth > 0 and rng is not None:
        field = ndimage.gaussian_filter(rng.standard_normal(lungs.shape), sigma=max(2.0, smooth))
        field /= field.std() + 1e-6
        depth = depth + smooth * field.ravel()[idx]
    order = np.argsort(-depth, kind="stable")
    band.ravel()[idx[order[:k]]] = True
    return band


def random_blobs(lungs: np.ndarray, rng, count: int, radius=(4, 20)) -> np.ndarray:
    """Union of random ellipsoids centred on lung voxels, clipped to the lungs (radius in voxels)."""
    out = np.zeros(lungs.shape, bool)
    idx = np.flatnonzero(lungs)
    if idx.size == 0:
        return out
    grids = np.ogrid[tuple(slice(0, n) for n in lungs.shape)]
    for _ in range(count):
        centre = np.unravel_index(idx[rng.integers(idx.size)], lungs.shape)
        radii = rng.uniform(radius[0], radius[1], size=lungs.ndim)
        d = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii))
        out |= d <= 1.0
    return out & lungs


def paint_dense(image: np.ndarray, region: np.ndarray, rng, hu_range=None, texture_hu: float = 25.0,
                dense_hu=DENSE_HU) -> np.ndarray:
    """Replace ``region`` by dense lung: a random base HU in ``dense_hu`` plus smooth texture and noise."""
    out = image.copy()
    if not region.any():
        return out
    base = rng.uniform(dense_hu[0] + 20, dense_hu[1] - 20)
    texture = ndimage.gaussian_filter(rng.standard_normal(region.shape), sigma=1.5)
    texture *= texture_hu / (texture.std() + 1e-6)
    hu = np.clip(base + texture, dense_hu[0], dense_hu[1])
    if hu_range is not None:
        lo, hi = hu_range
        hu = np.clip((hu - lo) / (hi - lo), 0.0, 1.0)
    out[region] = hu[region].astype(out.dtype)
    return out


def add_dense_lung(image: np.ndarray, labels: np.ndarray, rng, hu_range=None, max_fraction: float = 0.4):
    """Training augmentation: a random mix of a dependent band (0..max_fraction of the lung) and blobs."""
    lungs = labels > 0
    if not lungs.any():
        return image
    region = np.zeros(lungs.shape, bool)
    kind = rng.integers(3)  # 0 band, 1 blobs, 2 both
    if kind in (0, 2):
        smooth = rng.uniform(0, 6) if lungs.ndim == 3 else 0.0
        region |= dependent_band_exact(lungs, rng.uniform(0.05, max_fraction), rng, smooth)
    if kind in (1, 2):
        scale = max(lungs.shape) / 256.0 if lungs.ndim == 2 else max(lungs.shape) / 128.0
        region |= random_blobs(lungs, rng, int(rng.integers(1, 6)), (4 * scale, 30 * scale))
    return paint_dense(image, region, rng, hu_range)


def make_dense_case(hu: np.ndarray, lungs: np.ndarray, fraction: float = 0.25, seed: int = 0) -> tuple:
    """Stress test volume: the posterior ``fraction`` of the lung made dense (-100..+60 HU).

    Returns (new HU array, dense region). ``hu`` and ``lungs`` on the canonical LPS grid (z, y, x)."""
    rng = np.random.default_rng(seed)
    region = dependent_band_exact(lungs, fraction, rng, smooth=4.0)
    out = paint_dense(hu.astype(np.float32), region, rng)
    return out.astype(hu.dtype) if np.issubdtype(hu.dtype, np.integer) else out, region


try:  # MONAI dictionary transform wrapper for the training pipelines
    from monai.transforms import MapTransform, RandomizableTransform
    from monai.utils import convert_to_numpy

    class RandDenseLungd(RandomizableTransform, MapTransform):
        """With probability ``prob``, paint synthetic dense lung into ``keys[0]`` inside ``label_key``."""

        def __init__(self, keys, label_key: str, prob: float = 0.5, hu_range=(-1024, 600), max_fraction=0.4):
            MapTransform.__init__(self, keys)
            RandomizableTransform.__init__(self, prob)
            self.label_key, self.hu_range, self.max_fraction = label_key, hu_range, max_fraction

        def __call__(self, data):
            import torch

            d = dict(data)
            self.randomize(None)
            if not self._do_transform:
                return d
            seed = int(self.R.randint(0, 2**31 - 1))
            rng = np.random.default_rng(seed)
            key = self.keys[0]
            img, lab = d[key], d[self.label_key]
            is_t = isinstance(img, torch.Tensor)
            arr, labarr = convert_to_numpy(img), convert_to_numpy(lab)
            new = add_dense_lung(arr[0], labarr[0], rng, self.hu_range, self.max_fraction)[None]
            d[key] = torch.as_tensor(new, dtype=img.dtype) if is_t else new.astype(arr.dtype)
            return d
except ImportError:  # pragma: no cover - monai is a dependency of training
    RandDenseLungd = None


def low_resolution(prob: float, ndim: int) -> list:
    """Coarse scanners (4-5 mm in-plane, thick low-dose CT) seen through the model grid: MONAI
    RandSimulateLowResolution, area down-sampling to 25-100 % then either nearest (the blocks that
    inference's area resize makes when it enlarges) or (tri)linear up-sampling, half the time each."""
    from monai.transforms import RandSimulateLowResolutiond

    if prob <= 0:
        return []
    smooth = "bilinear" if ndim == 2 else "trilinear"
    return [RandSimulateLowResolutiond("image", prob=prob / 2, downsample_mode="area", upsample_mode=mode,
                                       zoom_range=(0.25, 1.0)) for mode in ("nearest", smooth)]


def train_transforms(task: str, roi, dense_prob=0.6, dense_max_fraction=0.6, lowres_prob=0.0, opacity_prob=0.0,
                     families=(), acquisition_prob=0.0, spacing=None):
    """MONAI training transforms on cached uint8 model inputs (channel first): cxr, ct2d or ct3d."""
    from monai import transforms as T

    keys = ("image", "label")
    first = [T.ScaleIntensityRanged("image", 0, 255, 0.0, 1.0), T.CastToTyped("label", dtype=np.float32)]
    if task == "cxr":
        from .opacity import TRAINED, RandOpacityd

        opacity = [RandOpacityd(("image",), "label", prob=opacity_prob, families=TRAINED,
                                portable_prob=opacity_prob / 3)] if opacity_prob > 0 else []
        return T.Compose(first + opacity + [
            T.RandAffined(keys, prob=0.8, rotate_range=0.17, scale_range=0.12, translate_range=(20, 20),
                          shear_range=0.05, mode=("bilinear", "nearest"), padding_mode="zeros"),
            T.RandAdjustContrastd("image", prob=0.5, gamma=(0.6, 1.6)),
            T.RandScaleIntensityd("image", factors=0.2, prob=0.5),
            T.RandShiftIntensityd("image", offsets=0.1, prob=0.5),
            T.RandGaussianSmoothd("image", prob=0.15, sigma_x=(0.3, 1.2), sigma_y=(0.3, 1.2)),
            T.RandGaussianNoised("image", prob=0.3, std=0.03),
        ])
    if families:  # the pathology simulator's families (LungSegLib.pathology), with acquisition variation
        from .pathology import RandPathologyd

        dense = RandPathologyd(("image",), "label", families=tuple(families), prob=dense_prob,
                               hu_range=(-1024, 600), max_fraction=dense_max_fraction,
                               acquisition_prob=acquisition_prob, spacing=tuple(spacing or (2.5, 2.5, 2.5)))
    else:
        dense = RandDenseLungd(("image",), "label", prob=dense_prob, hu_range=(-1024, 600),
                               max_fraction=dense_max_fraction)
    common = [
        T.RandGaussianNoised("image", prob=0.4, std=0.015),       # about 25 HU of noise
        T.RandAdjustContrastd("image", prob=0.3, gamma=(0.8, 1.25)),
        T.RandScaleIntensityd("image", factors=0.05, prob=0.3),
        T.RandShiftIntensityd("image", offsets=0.02, prob=0.3),
    ]
    if task == "ct2d":
        return T.Compose(first + [dense, T.RandAffined(
            keys, prob=0.7, rotate_range=0.15, scale_range=0.15, translate_range=(16, 16),
            mode=("bilinear", "nearest"), padding_mode="zeros")] + low_resolution(lowres_prob, 2) + common)
    # The simulator's families are anatomical (posterior pleura, hilum, periphery): paint the whole
    # volume, then crop, or a crop's cut edge would pass for the pleura. The older bands paint the crop.
    paint_then_crop = [dense] if families else []
    return T.Compose(first + paint_then_crop + [
        T.SpatialPadd(keys, spatial_size=roi),
        T.RandCropByPosNegLabeld(keys, "label", spatial_size=roi, pos=3, neg=1, num_samples=2),
    ] + ([] if families else [dense]) + [
        T.RandAffined(keys, prob=0.5, rotate_range=(0.1, 0.1, 0.1), scale_range=(0.12, 0.12, 0.12),
                      mode=("bilinear", "nearest"), padding_mode="zeros"),
    ] + low_resolution(lowres_prob, 3) + common)


def augmentation_text(task: str, dense_prob: float, dense_max_fraction: float, lowres_prob: float = 0.0,
                      opacity_prob: float = 0.0, families=(), acquisition_prob: float = 0.0) -> str:
    """One-line description of the training augmentation for the model card."""
    if task == "cxr":
        from .opacity import HELD_OUT, TRAINED

        return ((f"synthetic opacities painted inside the lung mask (RandOpacityd p={opacity_prob}: families "
                 f"{', '.join(TRAINED)}; held out of training: {', '.join(HELD_OUT)}; label kept as lung) and "
                 f"the AP portable look (p={opacity_prob / 3:.2f}: lower contrast, wires, electrodes), then "
                 if opacity_prob > 0 else "") +"MONAI RandAffine (rotate 10 deg, scale 12 %, translate 20 px, shear), RandAdjustContrast (gamma "
                "0.6-1.6), RandScaleIntensity 20 %, RandShiftIntensity 0.1, RandGaussianSmooth, RandGaussianNoise; "
                "no left-right flips")
    if families:
        from .pathology import HELD_OUT

        dense = (f"pathology simulator (RandPathologyd, p={dense_prob}: families {', '.join(families)}, "
                 f"0.05-{dense_max_fraction:.2f} of the lung, label kept as lung; held out of training: "
                 f"{', '.join(HELD_OUT)}; acquisition variation p={acquisition_prob}: noise, kernels, thick "
                 "slices, truncated field of view, table)")
    else:
        dense = (f"synthetic dense lung (RandDenseLungd, p={dense_prob}: dependent bands up to "
                 f"{dense_max_fraction:.0%} of the lung and blobs at -100..+60 HU, label kept as lung)")
    return (dense + ", MONAI "
            "RandAffine (rotation, 12-15 % scale = spacing), RandGaussianNoise (~25 HU), RandAdjustContrast, "
            "RandScale/ShiftIntensity; no left-right flips"
            + (f"; RandSimulateLowResolution p={lowres_prob} (area down to 25-100 %, nearest or linear up)"
               if lowres_prob > 0 else "") + ("; 96^3 crops by RandCropByPosNegLabel"
               + (" after painting the whole volume" if families else "") if task == "ct3d" else ""))
