"""Chest radiograph readers (PNG/JPEG/TIFF through PIL, CR/DX DICOM through pydicom).

Radiographs become a 2D :class:`Image` of float32 grey values where larger = brighter (denser), with
pixel spacing in mm when the file states it. MONOCHROME1 is inverted and the DICOM rescale/VOI applied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import LungSegError
from .image import CXR, Image

MAX_PIXELS = 20000 * 20000  # refuse before decoding anything larger


def read_picture(path: Path) -> Image:
    from PIL import Image as PILImage

    PILImage.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with PILImage.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise LungSegError(f"{path}: image of {w}x{h} pixels exceeds the limit of {MAX_PIXELS} pixels")
            im.load()
            if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
                im = im.convert("L") if im.mode != "LA" else im.getchannel(0)
            arr = np.asarray(im)
    except LungSegError:
        raise
    except Exception as e:  # PIL raises several types for truncated or fake files
        raise LungSegError(f"{path}: cannot be read as a picture ({type(e).__name__}: {str(e)[:120]})") from None
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=-1)
    if arr.ndim != 2:
        raise LungSegError(f"{path}: picture has shape {arr.shape}; expected a 2D grey or RGB image")
    image = Image(arr.astype(np.float32), spacing=(1.0, 1.0), origin=(0.0, 0.0),
                  direction=(1.0, 0.0, 0.0, 1.0), modality=CXR, spacing_known=False)
    image.meta["bits"] = 16 if arr.dtype == np.uint16 or arr.max() > 255 else 8
    return image


def read_dicom_radiograph(path: Path) -> Image:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(str(path))
        arr = ds.pixel_array
    except Exception as e:
        raise LungSegError(f"{path}: DICOM pixel data cannot be decoded ({type(e).__name__}: {str(e)[:120]})") \
            from None
    if arr.ndim == 3 and getattr(ds, "SamplesPerPixel", 1) == 3:
        arr = arr.mean(axis=-1)
    if arr.ndim != 2:
        raise LungSegError(f"{path}: DICOM image has shape {arr.shape}; expected a single 2D radiograph")
    arr = apply_modality_lut(arr, ds)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        arr = apply_voi_lut(arr, ds)
    arr = np.asarray(arr, dtype=np.float32)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        arr = arr.max() + arr.min() - arr
    spacing = getattr(ds, "PixelSpacing", None) or getattr(ds, "ImagerPixelSpacing", None)
    known = spacing is not None
    row_mm, col_mm = (float(spacing[0]), float(spacing[1])) if known else (1.0, 1.0)
    image = Image(arr, spacing=(col_mm, row_mm), origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0),
                  modality=CXR, spacing_known=known)
    image.meta["photometric"] = str(getattr(ds, "PhotometricInterpretation", ""))
    image.meta["view"] = str(getattr(ds, "ViewPosition", ""))
    return image
