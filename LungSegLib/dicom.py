"""DICOM readers: series discovery and choice, and the checks a DICOM folder needs before its pixels are
read (scout/localiser series, mixed orientations, duplicate instances, missing slices, size limits).

A folder may hold several series. LungSeg takes the CT series with the most slices that is not a scout
and says so in a warning; the user can pick a series with ``FOLDER::SeriesInstanceUID``.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .dicom_geometry import apply_slice_geometry, check_pixel_geometry, check_pixel_spacing, slice_positions
from .dicom_multiframe import frame_headers, is_multiframe_volume
from .errors import LungSegError
from .limits import check_size, safe_text, special_file_kind, utf8_name
from .sitk_io import from_sitk_any, sitk_read

SERIES_SEP = "::"
MAX_GAP_STEPS, MAX_GAP_MM = 10, 30.0  # a gap beyond both is refused, smaller ones are interpolated
RADIOGRAPH_MODALITIES = ("CR", "DX", "DR", "RG", "MG", "PX", "XA")
HEADER_TAGS = ["ImageType", "Modality", "ImageOrientationPatient", "ImagePositionPatient", "SOPInstanceUID",
               "SeriesInstanceUID", "SeriesDescription", "Rows", "Columns", "NumberOfFrames", "SliceThickness",
               "SamplesPerPixel", "BitsAllocated", "PixelSpacing", "SliceLocation",
               "PixelPaddingValue", "RescaleSlope", "RescaleIntercept", "PatientPosition"]


def split_series(raw) -> tuple:
    """``FOLDER::UID`` -> (Path(FOLDER), UID); anything else -> (Path(raw), None)."""
    text = str(raw)
    if SERIES_SEP in text and not Path(text).exists():  # a file really named 'a::b' stays a file
        folder, uid = text.rsplit(SERIES_SEP, 1)
        return Path(folder), uid.strip() or None
    return Path(text), None


def is_dicom_file(path: Path) -> bool:
    if special_file_kind(path):  # a FIFO would block the open below
        return False
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def dicom_series(folder: Path) -> dict:
    """Series UID -> file names of the DICOM series directly inside ``folder``."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return {}
    if any(special_file_kind(p) or not utf8_name(p) for p in entries):  # GDCM loses files beside a FIFO and
        return _series_by_header([p for p in sorted(entries)          # aborts on a non-UTF-8 name
                                  if not special_file_kind(p) and utf8_name(p) and p.is_file()])
    reader = sitk.ImageSeriesReader()
    out = {}
    try:
        for uid in reader.GetGDCMSeriesIDs(str(folder)):
            out[uid] = list(reader.GetGDCMSeriesFileNames(str(folder), uid))
    except RuntimeError:
        return {}
    return out


def _series_by_header(files: list) -> dict:
    """Series UID -> files, grouped from the headers of files with the DICOM preamble (pydicom)."""
    out = {}
    for f in files:
        if not is_dicom_file(f):
            continue
        try:
            ds = read_header(f)
        except LungSegError:
            continue
        if "PixelData" in ds or "Rows" in ds:
            out.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append(str(f))
    return out


def dicomdir_of(folder: Path) -> Path | None:
    """The DICOMDIR file of a DICOM CD/DVD layout (DICOMDIR beside PT*/ST*/SE* or DICOM/ subfolders)."""
    try:
        return next((p for p in Path(folder).iterdir() if p.name.upper() == "DICOMDIR" and p.is_file()), None)
    except OSError:
        return None


def dicomdir_series_folders(folder: Path, max_depth: int = 8) -> list:
    """Every folder under a DICOM CD layout that holds a DICOM series (a walk that follows no links; the
    DICOMDIR's own records are not needed: each leaf folder is read like a series folder)."""
    found, root_depth = [], len(Path(folder).parts)
    for here, dirs, _ in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if len(Path(here).parts) - root_depth >= max_depth:
            dirs[:] = []
        if Path(here) != Path(folder) and dicom_series(Path(here)):
            found.append(Path(here))
    return found


def read_header(path, every_tag: bool = False):
    """The tags LungSeg reads (``HEADER_TAGS``), or with ``every_tag`` all but the pixels (an enhanced CT's
    functional groups)."""
    import pydicom

    try:
        with warnings.catch_warnings():  # odd character sets etc.: pydicom warns, we only need a few tags
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=None if every_tag else HEADER_TAGS)
            for _ in ds:  # convert every element now, while warnings are silenced
                pass
            return ds
    except Exception as e:  # pydicom raises many types for broken files
        raise LungSegError(f"{path}: not a readable DICOM file ({type(e).__name__}: {str(e)[:120]}); "
                           "expected a DICOM image") from None


def is_localizer(ds) -> bool:
    return any("LOCALIZER" in str(v).upper() or "SCOUT" in str(v).upper()
               for v in (getattr(ds, "ImageType", None) or []))


def check_complete(path, ds) -> None:
    """A DICOM file with uncompressed pixel data must be at least as large as its pixel data."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None or ts.is_compressed:
        return
    need = (int(getattr(ds, "Rows", 0) or 0) * int(getattr(ds, "Columns", 0) or 0)
            * int(getattr(ds, "SamplesPerPixel", 1) or 1) * int(getattr(ds, "NumberOfFrames", 1) or 1)
            * int(getattr(ds, "BitsAllocated", 16) or 16) // 8)
    have = Path(path).stat().st_size
    if have < need:
        raise LungSegError(f"{path}: DICOM file is truncated ({have} bytes, its pixel data alone needs {need}); "
                           "expected a complete DICOM file")


def _series_summary(uid: str, files: list) -> dict:
    first = read_header(files[0])
    return {"uid": uid, "files": files, "n": len(files), "modality": str(getattr(first, "Modality", "")),
            "localizer": is_localizer(first), "description": safe_text(getattr(first, "SeriesDescription", ""))}


def choose_series(folder: Path, wanted: str | None = None) -> tuple:
    """(uid, files, warnings): the series the user asked for, or the non-scout CT series with most files."""
    series = dicom_series(folder)
    if not series and dicomdir_of(folder):
        folders = dicomdir_series_folders(folder)
        if len(folders) == 1:
            return choose_series(folders[0], wanted)
        names = ", ".join(safe_text(f.relative_to(folder), 80) for f in folders[:5]) or "none"
        raise LungSegError(f"{folder}: DICOM CD layout (DICOMDIR) with {len(folders)} series folders ({names}); "
                           "give one series folder, or the whole folder to 'lungseg segment' (one case per series)")
    if not series:
        raise LungSegError(f"{folder}: folder holds no DICOM series; expected DICOM files of one CT series")
    in_series = {Path(f).name for files in series.values() for f in files}
    stray = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.name not in in_series and p.suffix.lower() in (".dcm", ".dicom", ""))
    warnings = []
    if stray:
        warnings.append(f"{len(stray)} file(s) in {safe_text(folder.name)} are not readable DICOM and were ignored: "
                        f"{', '.join(safe_text(n, 60) for n in stray[:3])}{' ...' if len(stray) > 3 else ''}")
    if wanted:
        if wanted not in series:
            raise LungSegError(f"{folder}: no DICOM series {safe_text(wanted)!r} in this folder; series found: "
                               f"{', '.join(f'{u} ({len(f)} files)' for u, f in series.items())}")
        return wanted, series[wanted], warnings
    info = [_series_summary(u, f) for u, f in series.items()]
    info.sort(key=lambda s: (not s["localizer"], s["modality"].upper() == "CT", s["n"]), reverse=True)
    best = info[0]
    if len(info) > 1:
        others = ", ".join(f"{s['uid']} ({s['n']} files{', scout' if s['localizer'] else ''})" for s in info[1:])
        warnings.append(f"{len(info)} DICOM series in {safe_text(folder.name)}; chose {best['uid']} "
                        f"({best['modality'] or '?'} '{best['description']}', {best['n']} files, the CT series with "
                        f"the most slices); others: {others}; pick one with '{folder}{SERIES_SEP}UID'")
    return best["uid"], best["files"], warnings


def _keep_dominant(folder, headers: list, key, what: str, label: str) -> tuple:
    """Keep the slices sharing the most common ``key`` (at least 75 % of them); refuse a series without one."""
    groups = Counter(key(h) for _, h in headers)
    if len(groups) == 1:
        return headers, []
    main, count = groups.most_common(1)[0]
    if count < 0.75 * len(headers):
        raise LungSegError(f"{folder}: series mixes {len(groups)} {what} with no dominant one "
                           f"({dict(groups.most_common(3))}); expected one per series")
    kept = [(f, h) for f, h in headers if key(h) == main]
    return kept, [f"mixed {label}: {len(headers) - count} slices with another one ignored; kept {count} slices "
                  f"with {list(main) if isinstance(main, tuple) else main}"]


def _orientation(ds):
    o = getattr(ds, "ImageOrientationPatient", None)
    try:
        return tuple(float(v) for v in np.round(np.asarray(o, float), 3)) if o is not None else "no orientation"
    except (TypeError, ValueError):
        return "unreadable orientation"


def _size(ds):
    return (int(getattr(ds, "Columns", 0) or 0), int(getattr(ds, "Rows", 0) or 0))


def order_slices(folder: Path, files: list) -> tuple:
    """Sort the files of one series along the slice normal; drop other sizes and orientations (when a dominant
    one exists), slices without a position and duplicate instances; warn about gaps. Returns (files, header
    of the first file, warnings, geometry for :func:`apply_slice_geometry` or None)."""
    headers = [(f, read_header(f)) for f in files]
    first = headers[0][1]
    check_size(folder, (int(getattr(first, "Columns", 0) or 0), int(getattr(first, "Rows", 0) or 0),
                        len(files) * int(getattr(first, "NumberOfFrames", 1) or 1)),
               int(getattr(first, "SamplesPerPixel", 1) or 1))
    for f, h in headers:
        check_complete(f, h)
    return order_headers(folder, headers)


def order_headers(folder, headers: list) -> tuple:
    """:func:`order_slices` on ``(name, header)`` pairs already read: the files of a series, or the frames
    of an enhanced CT (:func:`dicom_multiframe.frame_headers`)."""
    warnings = []
    scouts = [f for f, h in headers if is_localizer(h)]
    if scouts and len(scouts) == len(headers):
        raise LungSegError(f"{folder}: the series is a scout/localiser (ImageType "
                           f"{'/'.join(map(str, headers[0][1].ImageType))}); expected an axial CT series")
    if scouts:
        headers = [(f, h) for f, h in headers if not is_localizer(h)]
        warnings.append(f"{len(scouts)} scout/localiser images ignored")
    modality = str(getattr(headers[0][1], "Modality", "")).upper()
    if len(headers) < 2 or modality in RADIOGRAPH_MODALITIES:
        return [f for f, _ in headers], headers[0][1], warnings, None
    headers, more = _keep_dominant(folder, headers, _size, "slice sizes (columns x rows)", "slice sizes")
    warnings += more
    headers, more = _keep_dominant(folder, headers, _orientation, "slice orientations", "orientations")
    warnings += more
    check_pixel_geometry(folder, headers[0][1])
    headers, positions, source, more = slice_positions(folder, headers)
    warnings += more
    pos = sorted(zip(positions, range(len(headers))), key=lambda t: t[0])
    kept, seen_uid, dups = [], set(), 0
    for p, i in pos:
        f, h = headers[i]
        uid = str(getattr(h, "SOPInstanceUID", f))
        if uid in seen_uid or (kept and abs(p - kept[-1][0]) < 1e-3):
            dups += 1
            continue
        seen_uid.add(uid)
        kept.append((p, f, h))
    if len(kept) == 1:
        raise LungSegError(f"{folder}: all {len(headers)} slices share one position ({kept[0][0]:.2f} mm along the "
                           f"slice normal, from {source}); expected slices at distinct positions")
    if dups:
        warnings.append(f"{dups} duplicate instances (same SOP instance UID or slice position) ignored")
    if len(kept) >= 3:
        steps = np.diff([p for p, _, _ in kept])
        typical = float(np.median(steps))
        worst = int(np.argmax(steps))
        if typical > 0 and steps[worst] > max(MAX_GAP_STEPS * typical, MAX_GAP_MM):
            raise LungSegError(f"{folder}: the series has a gap of {steps[worst]:.1f} mm (about "
                               f"{int(round(steps[worst] / typical)) - 1} missing slices of {typical:.2f} mm) after "
                               f"slice position {kept[worst][0]:.1f} mm: too large to interpolate; expected a complete "
                               "series (two separate stacks? give each as its own folder)")
        if typical > 0 and steps[worst] > 1.5 * typical:
            n_big = int((steps > 1.5 * typical).sum())
            warnings.append(f"missing slices or uneven spacing: gap of {steps[worst]:.2f} mm at slice position "
                            f"{kept[worst][0]:.1f} mm (expected {typical:.2f} mm; {n_big} such gaps); "
                            "the gap is filled by interpolation between its neighbouring slices")
    geometry = ([(f, h) for _, f, h in kept], [p for p, _, _ in kept], source)
    return [f for _, f, _ in kept], kept[0][2], warnings, geometry


def read_dicom_folder(folder: Path, wanted: str | None = None):
    uid, files, warnings = choose_series(folder, wanted)
    files, first, more, geometry = order_slices(folder, files)
    warnings += more
    rows, cols = int(getattr(first, "Rows", 0) or 0), int(getattr(first, "Columns", 0) or 0)
    frames = int(getattr(first, "NumberOfFrames", 1) or 1)
    check_size(folder, (cols, rows, len(files) * frames), int(getattr(first, "SamplesPerPixel", 1) or 1))
    modality = str(getattr(first, "Modality", "")).upper()
    if len(files) == 1 and is_multiframe_volume(first) and modality not in RADIOGRAPH_MODALITIES:
        image = read_dicom_file(Path(files[0]))
        image.meta.update(series_uid=uid, series_slices=1)
        image.meta.setdefault("warnings", [])[:0] = warnings
        return image
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    img = sitk_read(reader.Execute, folder)
    resampled = []  # the grid is not the source slices' own (tilt, uneven spacing): no DICOM SEG frames
    if geometry is not None and frames == 1:
        try:
            img, resampled = apply_slice_geometry(img, first, *geometry)
        except LungSegError as e:
            raise LungSegError(f"{folder}: {e}") from None
        warnings += resampled
    image = from_sitk_any(img, folder, single_slice_ct=modality != "" and modality not in RADIOGRAPH_MODALITIES)
    _dicom_meta(image, first)
    image.meta.update(series_uid=uid, series_slices=len(files))
    image.meta.update({"dicom_resampled": resampled[0]} if resampled else {"dicom_files": [str(f) for f in files]})
    image.meta.setdefault("warnings", []).extend(warnings)
    return image


def read_dicom_file(path: Path):
    ds = read_header(path)
    modality = str(getattr(ds, "Modality", "")).upper()
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    check_size(path, (int(getattr(ds, "Columns", 0) or 0), int(getattr(ds, "Rows", 0) or 0), frames),
               int(getattr(ds, "SamplesPerPixel", 1) or 1))
    check_complete(path, ds)
    if modality in RADIOGRAPH_MODALITIES or (modality in ("", "OT") and frames == 1 and "SliceThickness" not in ds):
        from .radiograph import read_dicom_radiograph

        image = read_dicom_radiograph(path)
    elif is_multiframe_volume(ds):  # enhanced CT: one file, many frames
        img, warnings, resampled, order = read_multiframe_ct(path)
        image = from_sitk_any(img, path, single_slice_ct=True)
        image.meta["dicom_multiframe"] = str(path)
        if resampled:
            image.meta["dicom_resampled"] = resampled[0]
        elif order is not None and sorted(order) == list(range(int(ds.NumberOfFrames))):
            image.meta["dicom_frame_order"] = order  # slice k of the volume is frame order[k] of the file
        image.meta.setdefault("warnings", []).extend(warnings)
    else:  # CT (or MR, PT...): a volume, even when it is one slice, so CT engines can say what is wrong
        if "PixelSpacing" in ds:
            check_pixel_spacing(path, ds)  # ITK would read a zero pixel size as 1 mm
        img = sitk_read(lambda: sitk.ReadImage(str(path)), path)
        image = from_sitk_any(img, path, single_slice_ct=True)
    _dicom_meta(image, ds)
    return image


def read_multiframe_ct(path: Path) -> tuple:
    """(image, warnings, resampling notes, file frame index of each slice or None) of an enhanced CT: ITK
    reads the voxels (frames in file order, rescale applied); the frames are then ordered and placed by
    their own functional groups (:mod:`dicom_multiframe`), with a series' checks and resampling."""
    img = sitk_read(lambda: sitk.ReadImage(str(path)), path)
    headers = frame_headers(path, read_header(path, every_tag=True))
    if headers is None:
        return img, ["multi-frame DICOM without per-frame functional groups: its geometry is ITK's reading "
                     "of the shared tags; check the voxel size in the report"], [], None
    names, first, warnings, geometry = order_headers(path, headers)
    arr = sitk.GetArrayViewFromImage(img)
    if geometry is None or arr.ndim != 3 or arr.shape[0] != len(headers):
        raise LungSegError(f"{path}: enhanced DICOM with {len(headers)} frames read as an image of shape "
                           f"{arr.shape}; expected one axial CT slice per frame")
    index = {name: k for k, (name, _) in enumerate(headers)}
    order = [index[n] for n in names]
    stack = sitk.GetImageFromArray(arr[order])
    row_step, column_step = (float(v) for v in first.PixelSpacing)
    stack.SetSpacing((column_step, row_step, 1.0))
    stack, resampled = apply_slice_geometry(stack, first, *geometry)
    return stack, warnings + resampled, resampled, order


def _dicom_meta(image, ds) -> None:
    image.meta["dicom_modality"] = str(getattr(ds, "Modality", "")).upper()
    image.meta["image_type"] = [str(v) for v in (getattr(ds, "ImageType", None) or [])]
    image.meta["series_description"] = safe_text(getattr(ds, "SeriesDescription", ""))
    image.meta["patient_position"] = str(getattr(ds, "PatientPosition", "") or "")
    if is_localizer(ds):
        image.meta["scout"] = True
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        image.meta["scaling"] = (f"DICOM RescaleSlope {safe_text(getattr(ds, 'RescaleSlope', 1), 20)}, "
                                 f"RescaleIntercept {safe_text(getattr(ds, 'RescaleIntercept', 0), 20)}")
