"""SimpleITK images -> :class:`Image`: the one place ITK read errors become user messages and 4D /
multi-component / single-slice images are sorted out. Used by io.py (files) and dicom.py (series),
which import it; it imports neither."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .errors import LungSegError
from .image import CT, CXR, Image

sitk.ProcessObject_SetGlobalWarningDisplay(False)  # ITK prints warnings to stderr; we report our own


def sitk_read(fn, path):
    try:
        return fn()
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
        raise LungSegError(f"{path}: cannot be read as an image ({first[:200]}); expected a complete NIfTI, NRRD, "
                           "MetaImage or DICOM image") from None


def from_sitk_any(img: sitk.Image, path, single_slice_ct: bool | None = None) -> Image:
    """SimpleITK image -> :class:`Image`. A one-slice volume stays a CT slice when ``single_slice_ct`` (DICOM
    CT) or, when unknown (None), when its values look like HU; otherwise it is a radiograph stored as a volume."""
    if img.GetDimension() == 4:
        if img.GetSize()[3] != 1:
            raise LungSegError(f"{path}: 4D image of size {img.GetSize()}; expected a 3D CT volume or a 2D radiograph")
        img = sitk.Extract(img, list(img.GetSize()[:3]) + [0], [0, 0, 0, 0])
    if img.GetNumberOfComponentsPerPixel() > 1:
        n = img.GetNumberOfComponentsPerPixel()
        if img.GetDimension() == 3 and img.GetSize()[2] == 1:
            img = img[:, :, 0]
        if img.GetDimension() == 2:
            img = sitk.VectorIndexSelectionCast(img, 0) if n < 3 else _rgb_to_grey(img)
        else:
            raise LungSegError(f"{path}: {n}-component volume (e.g. RGB); expected a single-component CT volume")
    dim = img.GetDimension()
    if dim == 3 and img.GetSize()[2] == 1:
        arr = sitk.GetArrayViewFromImage(img)
        keep_ct = single_slice_ct if single_slice_ct is not None else float(np.percentile(arr, 1)) < -500
        if not keep_ct:  # a radiograph stored as a one-slice volume
            image = Image.from_sitk(img[:, :, 0], modality=CXR)
            image.meta["single_slice"] = True
            return image
        image = Image.from_sitk(img, modality=CT)
        image.meta["single_slice"] = True
        return image
    return Image.from_sitk(img, modality=CT if dim == 3 else CXR)


def _rgb_to_grey(img: sitk.Image) -> sitk.Image:
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    grey = sitk.GetImageFromArray(arr[..., :3].mean(axis=-1))
    grey.CopyInformation(sitk.VectorIndexSelectionCast(img, 0))
    return grey
