"""Pre-processing shared by inference and training (so a model sees the same input in both).

CT slices: crop to the body's in-plane box, pad to a square, resize to the model's size, scale HU.
CT volumes: resample to the model's spacing with SimpleITK, scale HU.
Radiographs: percentile intensity scaling and resize.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

AIR_HU = -1024.0


def scale_hu(arr: np.ndarray, hu_range=(-1024, 600)) -> np.ndarray:
    from monai.transforms import ScaleIntensityRange

    t = ScaleIntensityRange(a_min=hu_range[0], a_max=hu_range[1], b_min=0.0, b_max=1.0, clip=True,
                            dtype=np.float32)
    return np.asarray(t(arr.astype(np.float32, copy=False)))


def scale_radiograph(arr: np.ndarray, percentiles=(0.5, 99.5)) -> np.ndarray:
    from monai.transforms import ScaleIntensityRangePercentiles

    t = ScaleIntensityRangePercentiles(lower=percentiles[0], upper=percentiles[1], b_min=0.0, b_max=1.0,
                                       clip=True, dtype=np.float32)
    return np.asarray(t(arr[None].astype(np.float32, copy=False)))[0]


def resize(arr: np.ndarray, size, mode="area") -> np.ndarray:
    """Resize the trailing 2 (or 3) axes; leading axis is treated as channels (MONAI Resize)."""
    from monai.transforms import Resize

    kw = {"anti_aliasing": False} if mode in ("bilinear", "trilinear", "bicubic") else {}
    return np.asarray(Resize(spatial_size=tuple(size), mode=mode, **kw)(arr))


@dataclass
class SliceBox:
    """Where the model's square slices sit inside the canonical volume's (y, x) plane."""
    y0: int
    y1: int
    x0: int
    x1: int
    side: int

    @property
    def pads(self):
        h, w = self.y1 - self.y0, self.x1 - self.x0
        return (self.side - h) // 2, (self.side - w) // 2


def body_box(volume: np.ndarray, margin: int = 4) -> SliceBox:
    """In-plane box around the body (largest dense blob of the axial projection), padded to a square."""
    proj = (volume[:: max(1, volume.shape[0] // 32)] > -500).mean(axis=0) > 0.1
    lab, n = ndimage.label(proj)
    h, w = volume.shape[1:]
    if n == 0:
        y0, y1, x0, x1 = 0, h, 0, w
    else:
        sizes = ndimage.sum(proj, lab, index=range(1, n + 1))
        sl = ndimage.find_objects(lab)[int(np.argmax(sizes))]
        y0, y1 = max(0, sl[0].start - margin), min(h, sl[0].stop + margin)
        x0, x1 = max(0, sl[1].start - margin), min(w, sl[1].stop + margin)
        if (y1 - y0) < h // 4 or (x1 - x0) < w // 4:  # implausibly small body: use the whole slice
            y0, y1, x0, x1 = 0, h, 0, w
    return SliceBox(y0, y1, x0, x1, max(y1 - y0, x1 - x0))


def slices_to_model(volume: np.ndarray, box: SliceBox, size, hu_range) -> np.ndarray:
    """(Z, Y, X) HU -> (Z, 1, size, size) float32 model input."""
    crop = volume[:, box.y0:box.y1, box.x0:box.x1].astype(np.float32)
    py, px = box.pads
    sq = np.full((crop.shape[0], box.side, box.side), AIR_HU, np.float32)
    sq[:, py:py + crop.shape[1], px:px + crop.shape[2]] = crop
    sq = resize(sq, size, mode="area") if box.side != size[0] else sq
    return scale_hu(sq, hu_range)[:, None]


def slice_probabilities(prob: np.ndarray, box: SliceBox, shape) -> np.ndarray:
    """(Z, C, s, s) class probabilities -> (Z, C, Y, X) float32 on the canonical grid (background = 1
    outside the body box), so a slice model can be averaged with another engine's probabilities."""
    z, c = prob.shape[:2]
    up = resize(prob.reshape(z * c, *prob.shape[2:]), (box.side, box.side), mode="bilinear")
    up = up.reshape(z, c, box.side, box.side)
    py, px = box.pads
    h, w = box.y1 - box.y0, box.x1 - box.x0
    out = np.zeros((z, c) + tuple(shape[1:]), np.float32)
    out[:, 0] = 1.0
    out[:, :, box.y0:box.y1, box.x0:box.x1] = up[:, :, py:py + h, px:px + w]
    return out


def resample_volume(image, spacing, interpolator="linear", default=AIR_HU):
    """Resample an :class:`Image` onto an axis-aligned grid of ``spacing`` mm covering the same extent."""
    import SimpleITK as sitk

    src = image.to_sitk()
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(src.GetSize(), src.GetSpacing(), spacing)]
    interp = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}[interpolator]
    out = sitk.Resample(src, size, sitk.Transform(), interp, src.GetOrigin(), list(spacing), src.GetDirection(),
                        float(default), src.GetPixelID() if interpolator == "nearest" else sitk.sitkFloat32)
    return out


def labels_from_low_grid(prob: np.ndarray, low, image, slab: int = 32) -> np.ndarray:
    """Argmax of class probabilities on the model's grid ``low`` (SimpleITK image geometry), linearly
    resampled onto ``image``'s (z, y, x) grid a slab of slices at a time, so memory stays at a few slabs
    of float maps instead of one full-size map per class (a 512x512x600 CT: 0.6 GB each)."""
    channels = low_grid_channels(prob, low)
    labels = np.zeros(image.array.shape, np.uint8)
    for z0 in range(0, labels.shape[0], slab):
        labels[z0:z0 + slab] = np.argmax(probabilities_from_low_grid(channels, image, z0, slab), axis=0)
    return labels


def low_grid_channels(prob: np.ndarray, low) -> list:
    """(C, z, y, x) probabilities on the model grid -> one SimpleITK image per class with ``low``'s geometry."""
    import SimpleITK as sitk

    channels = []
    for p in prob:
        ch = sitk.GetImageFromArray(np.ascontiguousarray(p, np.float32))
        ch.CopyInformation(low)
        channels.append(ch)
    return channels


def probabilities_from_low_grid(channels: list, image, z0: int, n: int) -> np.ndarray:
    """(C, n, Y, X) float32: the model-grid class images linearly resampled onto slices z0..z0+n-1 of
    ``image``'s canonical grid (fewer at the end of the volume)."""
    import SimpleITK as sitk

    nz, ny, nx = image.array.shape
    n = min(n, nz - z0)
    direction = np.asarray(image.direction, float).reshape(3, 3)
    spacing = np.asarray(image.spacing, float)
    origin = np.asarray(image.origin, float) + direction @ (np.array([0.0, 0.0, z0]) * spacing)
    return np.stack([sitk.GetArrayFromImage(sitk.Resample(ch, [nx, ny, n], sitk.Transform(), sitk.sitkLinear,
                                                          origin.tolist(), spacing.tolist(),
                                                          direction.ravel().tolist(), 1.0 if k == 0 else 0.0,
                                                          sitk.sitkFloat32))
                     for k, ch in enumerate(channels)])  # outside the model grid: background


def radiograph_to_model(arr: np.ndarray, size, percentiles) -> np.ndarray:
    """(H, W) grey -> (1, 1, s, s) float32 model input."""
    x = scale_radiograph(arr, percentiles)
    return resize(x[None], size, mode="area")[None].astype(np.float32)
