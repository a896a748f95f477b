"""Resource limits, checked from file headers BEFORE any pixel is read or allocated, and text hygiene for
strings that come out of files (DICOM names, descriptions) and end up in messages or reports."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import SimpleITK as sitk

from .errors import LungSegError

def _env_voxels(default: int = 1024 * 1024 * 1200) -> int:
    """LUNGSEG_MAX_VOXELS (a positive integer, e.g. 2e9 or 2000000000); anything else is ignored with a note."""
    raw = os.environ.get("LUNGSEG_MAX_VOXELS", "").strip()
    if not raw:
        return default
    try:
        value = int(float(raw))
        if value > 0:
            return value
    except (ValueError, OverflowError):
        pass
    import sys

    print(f"lungseg: LUNGSEG_MAX_VOXELS={raw[:40]!r} is not a positive number of voxels; using {default:.3g}",
          file=sys.stderr)
    return default


# A 1024x1024x1200 CT (~1.26e9 voxels). Override with LUNGSEG_MAX_VOXELS (an integer) for bigger machines.
MAX_VOXELS = _env_voxels()
BYTES_PER_VOXEL_NEEDED = 12  # input + float copy + labels + masks while segmenting and measuring
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe_text(value, max_len: int = 120) -> str:
    """A string from a file, safe to print: no control characters, bounded length."""
    text = _CONTROL.sub("?", str(value if value is not None else ""))
    return text if len(text) <= max_len else text[: max_len - 3] + "..."


def special_file_kind(path) -> str | None:
    """'named pipe (FIFO)', 'character device', ... for what is neither a regular file nor a folder (opening
    one can block forever or read endless bytes); None otherwise or when it cannot be examined."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, kind in ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return kind
    return "special file"


def utf8_name(path) -> bool:
    """False for a path holding bytes that are not UTF-8 (Python keeps them as surrogates; SimpleITK and
    GDCM abort the whole process on such a name)."""
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def require_regular(path) -> None:
    """Refuse a special file, or a name the image libraries cannot take, before anything opens it."""
    if not utf8_name(path):
        raise LungSegError(f"{ascii(str(path))[1:-1][:300]}: file name is not valid UTF-8; the image libraries "
                           "cannot open it (they would abort); rename it")
    kind = special_file_kind(path)
    if kind:
        raise LungSegError(f"{safe_text(path, 300)}: is a {kind}, not a regular file; expected an image file or a "
                           "folder (LungSeg never opens special files: reading one can block forever)")


def available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_size(path, size, components: int = 1) -> None:
    """Refuse an image whose header claims more voxels than :data:`MAX_VOXELS` or than memory can hold."""
    voxels = 1
    for n in size:
        voxels *= max(1, int(n))
    voxels *= max(1, int(components))
    shape = "x".join(str(int(n)) for n in size)
    if voxels > MAX_VOXELS:
        raise LungSegError(f"{path}: header claims {shape} = {voxels:.3g} voxels, more than the limit of "
                           f"{MAX_VOXELS:.3g} voxels (set LUNGSEG_MAX_VOXELS to raise it); refused before reading")
    need, avail = voxels * BYTES_PER_VOXEL_NEEDED, available_memory_bytes()
    if avail is not None and need > avail:
        raise LungSegError(f"{path}: image of {shape} voxels needs about {need / 2**30:.1f} GiB of memory, only "
                           f"{avail / 2**30:.1f} GiB are available; refused before reading")


def volume_header(path: Path) -> dict:
    """Size, dimension, components and pixel type of a NIfTI/NRRD/MetaImage file, reading the header only."""
    from .nifti import is_nifti2, nifti2_volume_header

    if is_nifti2(path):
        return nifti2_volume_header(path)  # ITK has no NIfTI-2 reader
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
        raise LungSegError(f"{path}: cannot be read as an image ({first[:200]}); expected a NIfTI, NRRD or "
                           "MetaImage volume") from None
    keys = set(reader.GetMetaDataKeys())
    return {"meta": {k: reader.GetMetaData(k) for k in ("vox_offset", "bitpix") if k in keys},
            "size": tuple(reader.GetSize()), "dimension": reader.GetDimension(),
            "components": reader.GetNumberOfComponents(), "pixel": sitk.GetPixelIDValueAsString(reader.GetPixelID()),
            "spacing": tuple(reader.GetSpacing()), "direction": tuple(reader.GetDirection())}


def check_volume_header(path: Path) -> dict:
    """Header-only checks: dimension, components, voxel count. Returns the header."""
    h = volume_header(path)
    size, dim, comps = h["size"], h["dimension"], h["components"]
    if dim > 4 or (dim == 4 and size[3] > 1):
        raise LungSegError(f"{path}: {dim}D image of size {'x'.join(map(str, size))} (e.g. a time series); "
                           "expected a 3D CT volume or a 2D radiograph")
    if comps > 1 and dim >= 3 and not (dim == 3 and size[2] == 1):
        raise LungSegError(f"{path}: volume has {comps} components per voxel ({h['pixel']}, e.g. RGB or "
                           "vector data); expected a single-component (grey) CT volume")
    check_size(path, size, comps)
    spacing = h["spacing"]
    if not all(s > 0 and s < float("inf") for s in spacing):  # also false for NaN
        raise LungSegError(f"{path}: header gives voxel spacing {tuple(spacing)}; expected positive sizes in mm "
                           "(a zero or undefined voxel size makes every volume meaningless)")
    if str(path).lower().endswith((".nii", ".nii.gz")) and {"vox_offset", "bitpix"} <= set(h["meta"]):
        check_nifti_complete(path, h)
    return h


def check_nifti_complete(path: Path, h: dict) -> None:
    """ITK reads a truncated NIfTI without complaint (the missing voxels become garbage or zeros): compare
    the bytes the header needs with the bytes the file holds (for .nii.gz, decompressed up to that point)."""
    import gzip
    import zlib

    voxels = 1
    for n in h["size"]:
        voxels *= int(n)
    need = int(float(h["meta"]["vox_offset"])) + voxels * h["components"] * int(h["meta"]["bitpix"]) // 8
    if str(path).lower().endswith(".gz"):
        have = 0
        try:
            with gzip.open(path, "rb") as f:
                while have < need:
                    chunk = f.read(min(1 << 24, need - have))
                    if not chunk:
                        break
                    have += len(chunk)
        except (OSError, EOFError, zlib.error) as e:
            raise LungSegError(f"{path}: compressed data is truncated or corrupt ({type(e).__name__}: "
                               f"{str(e)[:80]}); expected a complete .nii.gz file") from None
    else:
        have = Path(path).stat().st_size
    if have < need:
        raise LungSegError(f"{path}: file is truncated: it holds {have} bytes of image data and header, the header "
                           f"needs {need}; expected a complete NIfTI file")
