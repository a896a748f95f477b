"""Chest radiograph readers (PNG/JPEG/TIFF through PIL, CR/DX DICOM through pydicom).

Radiographs become a 2D :class:`Image` of float32 grey values where larger = brighter (denser), with
pixel spacing in mm when the file states it. MONOCHROME1 is inverted and the DICOM rescale/VOI applied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import LungSegError
from .image import CXR, Image

MAX_PIXELS = 12000 * 12000  # declared size above this is refused before decoding (decompression bombs)
MAX_SIDE = 4096  # larger radiographs are downscaled by an integer factor right after decoding
EXIF_ORIENTATION = 0x0112
ORIENTATIONS = {2: "mirrored", 3: "rotated 180 degrees", 4: "flipped upside down", 5: "transposed",
                6: "rotated 90 degrees clockwise", 7: "transversed", 8: "rotated 90 degrees counter-clockwise"}


def _factor(w: int, h: int) -> int:
    return max(1, -(-max(w, h) // MAX_SIDE))


def _block_mean(arr: np.ndarray, f: int) -> np.ndarray:
    """Downscale a 2D array by an integer factor (mean of f x f blocks) without float copies of the input."""
    h, w = (arr.shape[0] // f) * f, (arr.shape[1] // f) * f
    return arr[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3), dtype=np.float32)


def _downscale(image: Image, f: int, size) -> Image:
    if f <= 1:
        return image
    image.array = _block_mean(image.array, f)
    return _note_downscale(image, f, size)


def _note_downscale(image: Image, f: int, size) -> Image:
    """Record that a radiograph was read reduced by ``f``: coarser spacing, the input size, a warning."""
    image.spacing = tuple(float(s) * f for s in image.spacing)
    image.meta["downscale_factor"] = f
    image.meta["input_size"] = tuple(int(v) for v in size)
    image.meta.setdefault("warnings", []).append(
        f"radiograph of {size[0]}x{size[1]} pixels downscaled by {f} to {image.array.shape[1]}x{image.array.shape[0]} "
        f"(limit {MAX_SIDE} pixels a side); pixel counts are on the reduced grid, areas in cm2 unchanged, "
        "lungs.png is written at the input size")
    return image


def read_picture(path: Path) -> Image:
    from PIL import Image as PILImage

    from PIL import ImageOps

    PILImage.MAX_IMAGE_PIXELS = MAX_PIXELS
    f, notes = 1, []
    try:
        with PILImage.open(path) as im:
            frames = int(getattr(im, "n_frames", 1) or 1)
            if frames > 1:
                notes.append(f"picture holds {frames} frames (pages); only the first was used, {frames - 1} dropped")
            orientation = int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise LungSegError(f"{path}: picture declares {w}x{h} = {w * h:.3g} pixels, more than the limit of "
                                   f"{MAX_PIXELS:.3g} pixels; refused before decoding")
            f = _factor(w, h)
            im.load()
            if orientation != 1:  # cameras and phones store pixels sideways and say so in EXIF
                im = ImageOps.exif_transpose(im)
                notes.append(f"EXIF orientation {orientation} ({ORIENTATIONS.get(orientation, 'unknown')}) applied")
            if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
                im = im.convert("L") if im.mode != "LA" else im.getchannel(0)
            arr = np.asarray(im)
    except LungSegError:
        raise
    except PILImage.DecompressionBombError as e:  # PIL refuses more than twice its limit itself
        import re

        n = re.search(r"\((\d+) pixels\)", str(e))
        raise LungSegError(f"{path}: picture declares {int(n.group(1)) if n else 0:.3g} pixels, more than the limit "
                           f"of {MAX_PIXELS:.3g} pixels; refused before decoding") from None
    except Exception as e:  # PIL raises several types for truncated or fake files
        raise LungSegError(f"{path}: cannot be read as a picture ({type(e).__name__}: {str(e)[:120]}); expected a "
                           "complete PNG, JPEG or TIFF image") from None
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=-1)
    if arr.ndim != 2:
        raise LungSegError(f"{path}: picture has shape {arr.shape}; expected a 2D grey or RGB image")
    bits = 16 if arr.dtype == np.uint16 or arr.max() > 255 else 8
    image = Image(arr if f > 1 else arr.astype(np.float32), spacing=(1.0, 1.0), origin=(0.0, 0.0),
                  direction=(1.0, 0.0, 0.0, 1.0), modality=CXR, spacing_known=False)
    image.meta["bits"] = bits
    image.meta.setdefault("warnings", []).extend(notes)
    return _downscale(image, f, (h, w) if orientation >= 5 else (w, h))


def view_turn(orientation) -> tuple | None:
    """(transpose, flip columns, flip rows) that turn a frontal radiograph to the standard view (patient's
    right on the image left, head up), from DICOM PatientOrientation (0020,0020), whose two values say where
    the image's rows and columns point ('L\\F' is the standard view); None when it cannot tell (lateral
    view, missing or unusable values)."""
    try:
        row, col = (str(v).strip().upper()[:1] for v in orientation)
    except (TypeError, ValueError):
        return None
    transpose = row in ("H", "F") and col in ("L", "R")  # rows run head-feet
    if transpose:
        row, col = col, row
    if row not in ("L", "R") or col not in ("H", "F"):
        return None
    return transpose, row == "R", col == "H"


def standard_view(arr: np.ndarray, orientation) -> tuple:
    """The radiograph turned by :func:`view_turn`. Returns (array, note or None)."""
    turn = view_turn(orientation)
    if turn is None or not any(turn):
        return arr, None
    transpose, flip_columns, flip_rows = turn
    arr = arr.T if transpose else arr
    arr = arr[:, ::-1] if flip_columns else arr
    arr = arr[::-1] if flip_rows else arr
    text = "\\".join(str(v) for v in orientation)
    return np.ascontiguousarray(arr), (f"DICOM PatientOrientation {text}: image turned to the standard view "
                                       "(patient's right on the image left, head up)")


def stored_view(arr: np.ndarray, turn) -> np.ndarray:
    """Undo :func:`standard_view`: an array on the turned grid back on the file's own pixel grid."""
    if not turn:
        return arr
    transpose, flip_columns, flip_rows = turn
    arr = arr[::-1] if flip_rows else arr
    arr = arr[:, ::-1] if flip_columns else arr
    return np.ascontiguousarray(arr.T if transpose else arr)


def labels_at_input_size(result):
    """Radiograph labels on the input's own pixel grid (nearest neighbour when it was read downscaled)."""
    size = result.image.meta.get("input_size")
    labels = result.labels
    if not size or tuple(size) == labels.array.shape[::-1]:
        return labels
    from PIL import Image as PILImage

    up = np.asarray(PILImage.fromarray(labels.array.astype(np.uint8)).resize(tuple(size), PILImage.NEAREST))
    return labels.__class__(up, spacing=tuple(s / result.image.meta.get("downscale_factor", 1)
                                              for s in labels.spacing), modality=labels.modality)


def read_dicom_radiograph(path: Path) -> Image:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(str(path))
        arr = ds.pixel_array
    except Exception as e:
        raise LungSegError(f"{path}: DICOM pixel data cannot be decoded ({type(e).__name__}: {str(e)[:120]})") \
            from None
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    notes = []
    if frames > 1 and arr.ndim >= 3 and arr.shape[0] == frames:
        arr = arr[0]
        notes.append(f"DICOM file holds {frames} frames; only the first was used, {frames - 1} dropped")
    if arr.ndim == 3 and getattr(ds, "SamplesPerPixel", 1) == 3:
        arr = arr.mean(axis=-1)
    if arr.ndim != 2:
        raise LungSegError(f"{path}: DICOM image has shape {arr.shape}; expected a single 2D radiograph")
    size, f = (arr.shape[1], arr.shape[0]), _factor(arr.shape[1], arr.shape[0])
    if f > 1:  # before the LUTs, which make float64 copies
        arr = _block_mean(arr, f).round().astype(arr.dtype)
    arr = apply_modality_lut(arr, ds)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        arr = apply_voi_lut(arr, ds)
    arr = np.asarray(arr, dtype=np.float32)
    stored = arr.shape
    arr, note = standard_view(arr, getattr(ds, "PatientOrientation", None))
    notes += [note] if note else []
    if arr.shape != stored:  # transposed: the input size in the turned frame
        size = size[::-1]
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        arr = arr.max() + arr.min() - arr
    spacing = getattr(ds, "PixelSpacing", None) or getattr(ds, "ImagerPixelSpacing", None)
    known = spacing is not None
    row_mm, col_mm = (float(spacing[0]), float(spacing[1])) if known else (1.0, 1.0)
    image = Image(arr, spacing=(col_mm, row_mm), origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0),
                  modality=CXR, spacing_known=known)
    image.meta.setdefault("warnings", []).extend(notes)
    image.meta["photometric"] = str(getattr(ds, "PhotometricInterpretation", ""))
    # for --dicom-seg: the source file, and how its pixel grid was turned (the SEG frame is on the stored grid)
    image.meta["dicom_radiograph"] = {"file": str(path), "turn": view_turn(getattr(ds, "PatientOrientation", None))}
    image.meta["view"] = str(getattr(ds, "ViewPosition", ""))
    if image.meta["view"].upper() in ("LL", "RL", "LLD", "RLD", "LATERAL"):
        image.meta.setdefault("warnings", []).append(f"lateral view ({image.meta['view']}); LungSeg expects a "
                                                     "frontal (PA/AP) chest radiograph")
    return _note_downscale(image, f, size) if f > 1 else image
