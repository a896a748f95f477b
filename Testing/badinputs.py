"""Builders of bad inputs for test_bad_inputs.py and test_batch_faults.py: small, fast, synthetic."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LungSegLib.errors import LungSegError
from LungSegLib.params import Parameters
from LungSegLib.phantom import chest_phantom

HU = Parameters(engine="hu")
SMALL = {"shape": (24, 40, 48), "spacing": (4.0, 4.0, 6.0)}  # ~0.8 L of lungs, runs in ~30 ms


def phantom(**kw):
    args = {**SMALL, **kw}
    return chest_phantom(**args)


def write_array(path, arr, spacing=(4.0, 4.0, 6.0)) -> Path:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing[: img.GetDimension()])
    sitk.WriteImage(img, str(path))
    return Path(path)


def write_phantom(path, **kw) -> Path:
    image, _, _ = phantom(**kw)
    sitk.WriteImage(image.to_sitk(), str(path))
    return Path(path)


def raises(fn, *words):
    """Call ``fn``; it must raise LungSegError whose message holds every word (case-insensitive)."""
    with pytest.raises(LungSegError) as info:
        fn()
    msg = str(info.value)
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in {msg!r}"
    assert "Traceback" not in msg
    return msg


def copy_dicom(src: Path, dst: Path, edit=None, files=None) -> Path:
    """Copy a DICOM series folder, optionally editing each dataset with ``edit(ds, index)``."""
    import pydicom

    dst.mkdir(parents=True, exist_ok=True)
    names = sorted(p for p in src.iterdir() if p.suffix == ".dcm")
    for i, p in enumerate(names if files is None else [names[k] for k in files]):
        if edit is None:
            shutil.copy(p, dst / p.name)
        else:
            ds = pydicom.dcmread(str(p))
            if edit(ds, i) is not False:
                ds.save_as(str(dst / p.name))
    return dst


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(path, width, height) -> Path:
    """A valid-looking PNG whose header declares ``width`` x ``height`` but holds almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b"")
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return Path(path)


def nifti_declaring(path, size, gz=True) -> Path:
    """A NIfTI file whose header claims ``size`` voxels (int16) with a few bytes of data."""
    tmp = Path(path).with_name("small_tmp.nii")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.int16)), str(tmp))
    b = bytearray(tmp.read_bytes())
    tmp.unlink()
    b[40:40 + 2 * (len(size) + 1)] = np.array([len(size), *size], np.int16).tobytes()
    Path(path).write_bytes(_gzip(bytes(b)) if gz else bytes(b))
    return Path(path)


def _gzip(data: bytes, trailing_zeros: int = 0) -> bytes:
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts = [c.compress(data)]
    chunk = bytes(1 << 20)
    for _ in range(trailing_zeros >> 20):
        parts.append(c.compress(chunk))
    parts.append(c.flush())
    return b"".join(parts)


def gzip_bomb(path, small_image_bytes: bytes, trailing_mb: int) -> Path:
    Path(path).write_bytes(_gzip(small_image_bytes, trailing_mb << 20))
    return Path(path)


def dx_dicom(path, arr: np.ndarray, photometric="MONOCHROME2", view="PA", spacing=(0.5, 0.5)) -> Path:
    """A minimal DX (digital radiograph) DICOM file of a uint16 array."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.ViewPosition, ds.PatientName = "DX", view, "Test^Radiograph"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.ImagerPixelSpacing = [str(s) for s in spacing]
    ds.PixelData = arr.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return Path(path)
