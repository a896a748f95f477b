"""Readers and writers. Every image enters as an :class:`~LungSegLib.image.Image` and every output
file is written atomically (temporary file in the same folder, then ``os.replace``)."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import LungSegError
from .image import CT, CXR, Image

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom", "")
SKIP_NAMES = ("lungs.seg.nrrd",)
sitk.ProcessObject_SetGlobalWarningDisplay(False)  # ITK prints warnings to stderr; we report our own

RIGHT, LEFT = 1, 2
SEGMENTS = (  # label value, segment ID, name, colour (Slicer's generic anatomy colours), SNOMED modifier
    (RIGHT, "right_lung", "Right lung", (0.502, 0.682, 0.502), ("24028007", "Right")),
    (LEFT, "left_lung", "Left lung", (0.839, 0.737, 0.455), ("7771000", "Left")),
)


def suffix_of(path: Path) -> str:
    name = path.name.lower()
    for s in VOLUME_SUFFIXES + PICTURE_SUFFIXES + (".dcm", ".dicom"):
        if name.endswith(s):
            return s
    return path.suffix.lower()


def case_name(path: Path) -> str:
    """File name without its extensions, or the folder name for a DICOM series; made safe for a path."""
    path = Path(path)
    name = path.name
    if not path.is_dir():
        s = suffix_of(path)
        name = name[: len(name) - len(s)] if s and name.lower().endswith(s) else name
    return sanitize_name(name)


def sanitize_name(name: str, max_len: int = 100) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._-")
    return (name[:max_len] or "case")


# ----------------------------------------------------------------------------------------- discovery
def is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def dicom_series(folder: Path) -> dict:
    """Series UID -> sorted file names of the DICOM series directly inside ``folder``."""
    reader = sitk.ImageSeriesReader()
    out = {}
    for uid in reader.GetGDCMSeriesIDs(str(folder)):
        out[uid] = list(reader.GetGDCMSeriesFileNames(str(folder), uid))
    return out


def list_cases(inputs) -> list:
    """Expand CLI inputs into ``(case_name, path)`` pairs: files, DICOM series folders, folders of cases."""
    cases = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise LungSegError(f"{path}: no such file or folder")
        if path.is_file():
            cases.append((case_name(path), path))
        elif dicom_series(path):
            cases.append((sanitize_name(path.name), path))
        else:
            found = []
            for child in sorted(path.iterdir()):
                if child.name.startswith(".") or child.name in SKIP_NAMES:
                    continue
                if child.is_dir():
                    if dicom_series(child):
                        found.append((sanitize_name(child.name), child))
                elif suffix_of(child) in VOLUME_SUFFIXES + PICTURE_SUFFIXES or is_dicom_file(child):
                    found.append((case_name(child), child))
            if not found:
                raise LungSegError(f"{path}: folder holds no readable image or DICOM series "
                                   f"(expected {', '.join(VOLUME_SUFFIXES + PICTURE_SUFFIXES)} or DICOM)")
            cases.extend(found)
    names = {}
    unique = []
    for name, p in cases:  # two inputs may share a name: keep both
        n = names.get(name, 0)
        names[name] = n + 1
        unique.append((name if n == 0 else f"{name}_{n + 1}", p))
    return unique


# ----------------------------------------------------------------------------------------- reading
def read_image(path, modality: str = "auto") -> Image:
    """Read a CT volume or a radiograph, keeping full geometry; ``modality`` forces CT or CXR."""
    path = Path(path)
    if not path.exists():
        raise LungSegError(f"{path}: no such file or folder")
    if path.is_dir():
        image = _read_dicom_folder(path)
    else:
        s = suffix_of(path)
        if s in PICTURE_SUFFIXES:
            image = _read_picture(path)
        elif s in VOLUME_SUFFIXES:
            image = _read_sitk(path)
        elif is_dicom_file(path) or s in (".dcm", ".dicom"):
            image = _read_dicom_file(path)
        else:
            raise LungSegError(f"{path}: unsupported file type {s or '(none)'}; expected "
                               f"{', '.join(VOLUME_SUFFIXES + PICTURE_SUFFIXES)}, DICOM or a DICOM folder")
    image.meta.setdefault("source", str(path))
    if modality in (CT, CXR):
        image.modality = modality
    return image


def _sitk_read(fn, path):
    try:
        return fn()
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
        raise LungSegError(f"{path}: cannot be read as an image ({first[:200]})") from None


def _from_sitk_any(img: sitk.Image, path) -> Image:
    if img.GetNumberOfComponentsPerPixel() > 1:
        if img.GetDimension() == 2:
            img = sitk.VectorIndexSelectionCast(img, 0) if img.GetNumberOfComponentsPerPixel() < 3 else \
                _rgb_to_grey(img)
        else:
            raise LungSegError(f"{img.GetNumberOfComponentsPerPixel()}-component volume; expected a "
                               "single-component CT volume")
    dim = img.GetDimension()
    if dim == 4:
        raise LungSegError(f"4D image of size {img.GetSize()}; expected a 3D CT volume or a 2D radiograph")
    if dim == 3 and img.GetSize()[2] == 1:  # single-slice volume: a radiograph stored as a volume
        img2 = img[:, :, 0]
        return Image.from_sitk(img2, modality=CXR)
    return Image.from_sitk(img, modality=CT if dim == 3 else CXR)


def _rgb_to_grey(img: sitk.Image) -> sitk.Image:
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    grey = sitk.GetImageFromArray(arr[..., :3].mean(axis=-1))
    grey.CopyInformation(sitk.VectorIndexSelectionCast(img, 0))
    return grey


def _read_sitk(path: Path) -> Image:
    img = _sitk_read(lambda: sitk.ReadImage(str(path)), path)
    return _from_sitk_any(img, path)


def _read_dicom_folder(folder: Path) -> Image:
    series = dicom_series(folder)
    if not series:
        raise LungSegError(f"{folder}: folder holds no DICOM series")
    uid, files = max(series.items(), key=lambda kv: len(kv[1]))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    img = _sitk_read(reader.Execute, folder)
    image = _from_sitk_any(img, folder)
    image.meta["series_uid"] = uid
    image.meta["series_slices"] = len(files)
    if len(series) > 1:
        others = ", ".join(f"{u} ({len(f)} files)" for u, f in series.items() if u != uid)
        image.meta.setdefault("warnings", []).append(
            f"{len(series)} DICOM series in {folder.name}; chose {uid} with the most slices ({len(files)}); "
            f"others: {others}")
    return image


def _read_dicom_file(path: Path) -> Image:
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception as e:  # pydicom raises many types for broken files
        raise LungSegError(f"{path}: not a readable DICOM file ({type(e).__name__}: {str(e)[:120]})") from None
    if str(getattr(ds, "Modality", "")).upper() in ("CR", "DX", "DR", "RG", "MG") or int(
            getattr(ds, "NumberOfFrames", 1) or 1) == 1 and not hasattr(ds, "SliceThickness"):
        from .radiograph import read_dicom_radiograph

        return read_dicom_radiograph(path)
    return _read_sitk(path)


def _read_picture(path: Path) -> Image:
    from .radiograph import read_picture

    return read_picture(path)


# ----------------------------------------------------------------------------------------- writing
@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` (same suffix); on success rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    s = suffix_of(path) or path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{s}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def write_labels(path, labels: Image) -> None:
    """Label map as uint8 on the input grid (NIfTI/NRRD by suffix) or a PNG for radiographs."""
    arr = np.asarray(labels.array, dtype=np.uint8)
    with atomic_path(path) as tmp:
        if suffix_of(Path(path)) == ".png":
            from PIL import Image as PILImage

            PILImage.fromarray(arr).save(tmp, format="PNG")
        else:
            sitk.WriteImage(labels.with_array(arr).to_sitk(), str(tmp), useCompression=True)


def segment_terminology(modifier) -> str:
    code, meaning = modifier
    return ("Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure"
            f"~SCT^39607008^Lung~SCT^{code}^{meaning}~Anatomic codes - DICOM master list~^^~^^")


def write_seg_nrrd(path, labels: Image) -> None:
    """Slicer segmentation file with segments "Right lung" / "Left lung" (slicerio writes Slicer's keys)."""
    import slicerio
    from slicerio.segmentation import terminology_entry_from_string

    arr = np.asarray(labels.array, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[None]
    ijk = labels.ijk_to_lps()
    if ijk.shape != (4, 4) or labels.ndim == 2:
        m = np.eye(4)
        m[:2, :2] = ijk[:2, :2]
        m[:2, 3] = ijk[:2, 2]
        ijk = m
    seg = slicerio.create_segmentation(arr.T.shape, ijk)
    voxels = arr.T  # numpy (z, y, x) -> slicerio (i, j, k)
    for value, seg_id, name, color, modifier in SEGMENTS:
        slicerio.add_segment(seg, voxels == value, {"id": seg_id, "name": name, "color": list(color),
                                                   "terminology": terminology_entry_from_string(segment_terminology(modifier))})
    with atomic_path(path) as tmp:
        slicerio.write_segmentation(str(tmp), seg)
