"""Readers and writers. Every image enters as an :class:`~LungSegLib.image.Image` and every output
file is written atomically (temporary file in the same folder, then ``os.replace``)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .dicom import (SERIES_SEP, dicom_series, dicomdir_of, dicomdir_series_folders, is_dicom_file, read_dicom_file,
                    read_dicom_folder, split_series)
from .errors import LungSegError
from .geometry import check_nifti_geometry, orthogonalize
from .image import CT, CXR, Image
from .limits import check_volume_header, require_regular, safe_text, special_file_kind, utf8_name
from .nifti import is_nifti2, is_nifti_name, nifti_scaling, read_nifti2
from .sitk_io import from_sitk_any, sitk_read

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom", "")
SKIP_NAMES = ("lungs.seg.nrrd",)

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


RESERVED_NAMES = {"measurements.csv", "errors.csv", "lungs.seg.nrrd", "regions.csv", "index.html"}


def sanitize_name(name: str, max_len: int = 100) -> str:
    """A case name safe as one folder inside OUTDIR: only letters, digits, '.', '_', '-'; no leading dot
    (so no '..' and no hidden names), at most ``max_len`` characters, never an OUTDIR-level file name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._-")
    name = name[:max_len].rstrip("._-") or "case"
    return name + "_case" if name.lower() in RESERVED_NAMES else name


# ----------------------------------------------------------------------------------------- discovery
def list_cases(inputs, unique: bool = True) -> list:
    """Expand CLI inputs into ``(case_name, path)`` pairs: files, DICOM series folders (``FOLDER::UID`` picks
    one series), folders of cases. ``unique=False`` leaves equal names for the caller to settle (the batch
    settles them against what OUTDIR already holds)."""
    cases = []
    for raw in inputs:
        if not str(raw).strip():
            raise LungSegError("empty input path; expected an image file, a DICOM series folder or a folder of cases")
        path, uid = split_series(raw)
        if not path.exists():
            raise LungSegError(f"{safe_text(path, 300)}: no such file or folder")
        require_regular(path)
        if uid is not None:
            if not path.is_dir():
                raise LungSegError(f"{path}: '{SERIES_SEP}UID' needs a DICOM folder; got a file")
            cases.append((sanitize_name(f"{path.name}_{uid[-12:]}"), str(raw)))
        elif path.is_file() and path.name.upper() == "DICOMDIR":  # the DICOMDIR file: its CD layout
            cases.extend(_dicomdir_cases(path.parent))
        elif path.is_file():
            cases.append((case_name(path), path))
        elif dicomdir_of(path) and not dicom_series(path):
            cases.extend(_dicomdir_cases(path))
        elif dicom_series(path):
            cases.append((sanitize_name(path.name), path))
        else:
            found = []
            children = sorted(path.iterdir())
            for child in children:
                if child.name.startswith(".") or child.name in SKIP_NAMES:
                    continue
                if special_file_kind(child) or not utf8_name(child):  # reported as a failed case, never opened
                    found.append((case_name(child), child))
                elif child.is_dir():
                    if dicom_series(child):
                        found.append((sanitize_name(child.name), child))
                    elif dicomdir_of(child):
                        found.extend(_dicomdir_cases(child))
                elif suffix_of(child) in VOLUME_SUFFIXES + PICTURE_SUFFIXES or is_dicom_file(child):
                    found.append((case_name(child), child))
            if not found:
                what = "is empty" if not children else f"holds {len(children)} entries but no readable image"
                raise LungSegError(f"{path}: folder {what} (expected {', '.join(VOLUME_SUFFIXES + PICTURE_SUFFIXES)} "
                                   "files, DICOM files or DICOM series folders)")
            cases.extend(found)
    return unique_names(cases) if unique else cases


def _dicomdir_cases(folder: Path) -> list:
    """One case per series folder of a DICOM CD layout, named after the CD folder and the series' path."""
    folders = dicomdir_series_folders(folder)
    if not folders:
        raise LungSegError(f"{folder}: DICOM CD layout (DICOMDIR) without any readable DICOM series in its "
                           "subfolders; expected image files under it")
    return [(sanitize_name(f"{folder.name}_{'_'.join(f.relative_to(folder).parts)}"), f) for f in folders]


def unique_names(cases) -> list:
    """Two inputs may share a name (``a/ct.nrrd``, ``b/ct.nrrd``, or two hostile names sanitised alike):
    keep both as ``name``, ``name_2``, ..."""
    taken = set()
    unique = []
    for name, p in cases:
        new, k = name, 1
        while new.lower() in taken:
            k += 1
            new = f"{name}_{k}"
        taken.add(new.lower())
        unique.append((new, p))
    return unique


# ----------------------------------------------------------------------------------------- reading
def read_image(path, modality: str = "auto") -> Image:
    """Read a CT volume or a radiograph, keeping full geometry; ``modality`` forces CT or CXR.
    Sizes are checked from the header before any pixel is read (:mod:`LungSegLib.limits`)."""
    path, uid = split_series(path)
    if not path.exists():
        raise LungSegError(f"{safe_text(path, 300)}: no such file or folder")
    require_regular(path)
    if path.is_file() and path.name.upper() == "DICOMDIR":
        path = path.parent
    if path.is_dir():
        image = read_dicom_folder(path, uid)
    else:
        s = suffix_of(path)
        if s in PICTURE_SUFFIXES:
            image = _read_picture(path)
        elif s in VOLUME_SUFFIXES:
            image = _read_sitk(path)
        elif is_dicom_file(path) or s in (".dcm", ".dicom"):
            image = read_dicom_file(path)
        else:
            raise LungSegError(f"{path}: unsupported file type {s or '(none)'}; expected "
                               f"{', '.join(VOLUME_SUFFIXES + PICTURE_SUFFIXES)}, DICOM or a DICOM folder")
    image.meta.setdefault("source", str(path) + (f"{SERIES_SEP}{uid}" if uid else ""))
    if modality in (CT, CXR):
        image.modality = modality
    return image


def _read_sitk(path: Path) -> Image:
    check_volume_header(path)  # size / dimension / components from the header, before reading pixels
    img = read_nifti2(path) if is_nifti2(path) else sitk_read(lambda: sitk.ReadImage(str(path)), path)
    if is_nifti_name(path):
        img = check_nifti_geometry(path, img)
    img, warnings = orthogonalize(img, path)
    image = from_sitk_any(img, path)
    image.meta.setdefault("warnings", []).extend(warnings)
    if is_nifti_name(path) and (scaling := nifti_scaling(path)):
        image.meta["scaling"] = scaling
    return image


def _read_picture(path: Path) -> Image:
    from .radiograph import read_picture

    return read_picture(path)


# ----------------------------------------------------------------------------------------- writing
def current_umask() -> int:
    """The process umask (read and restored: Python has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = current_umask()
RUN_TOKEN = secrets.token_hex(6)  # names this process's temporary files: .lungseg-<token>.*
TEMP_PREFIX = ".lungseg-"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` (same suffix); on success rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    s = suffix_of(path) or path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{RUN_TOKEN}.{path.name}.", suffix=f".part{s}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs get the user's normal permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:  # names from the file system may hold undecodable bytes: escape them
        Path(tmp).write_text(text, encoding="utf-8", errors="backslashreplace")


def write_labels(path, labels: Image) -> None:
    """Label map as uint8 on the input grid (NIfTI/NRRD by suffix) or a PNG for radiographs."""
    arr = np.asarray(labels.array, dtype=np.uint8)
    with atomic_path(path) as tmp:
        if suffix_of(Path(path)) == ".png":
            from PIL import Image as PILImage

            PILImage.fromarray(arr).save(tmp, format="PNG")
        else:
            sitk.WriteImage(labels.with_array(arr).to_sitk(), str(tmp), True, 1)  # fast zlib level


def segment_terminology(modifier) -> str:
    code, meaning = modifier
    return ("Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure"
            f"~SCT^39607008^Lung~SCT^{code}^{meaning}~Anatomic codes - DICOM master list~^^~^^")


def write_seg_nrrd(path, labels: Image, compression_level: int = 1) -> None:
    """Slicer segmentation file with segments "Right lung" / "Left lung": one layer whose label values
    are our label values (slicerio writes Slicer's header keys)."""
    import slicerio
    from slicerio.segmentation import terminology_entry_from_string

    from .postprocess import bounding_box

    arr = np.asarray(labels.array, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[None]
    ijk = labels.ijk_to_lps()
    if labels.ndim == 2:  # a radiograph: one slice, k axis along LPS z
        m = np.eye(4)
        m[:2, :2] = ijk[:2, :2]
        m[:2, 3] = ijk[:2, 2]
        ijk = m
    seg = slicerio.create_segmentation((1, 1, 1), ijk)
    seg["voxels"] = arr.T  # numpy (z, y, x) -> slicerio (i, j, k), a view
    for value, seg_id, name, color, modifier in SEGMENTS:
        segment = {"id": seg_id, "name": name, "color": list(color), "labelValue": value, "layer": 0,
                   "terminology": terminology_entry_from_string(segment_terminology(modifier))}
        box = bounding_box(arr == value, margin=0)
        if box is not None:  # Slicer's extent: i_min i_max j_min j_max k_min k_max (inclusive)
            segment["extent"] = [v for b in box[::-1] for v in (b.start, b.stop - 1)]
        seg["segments"].append(segment)
    with atomic_path(path) as tmp:
        slicerio.write_segmentation(str(tmp), seg, compression_level=compression_level)
