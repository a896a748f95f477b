"""DICOM Segmentation output (``--dicom-seg``): lungs.seg.dcm, a binary DICOM SEG object made with highdicom
that references the input CT series or CR/DX radiograph, so the lungs go back to a PACS or a DICOM viewer.

Segments "Right lung" (1) and "Left lung" (2) carry the codes of the Slicer segments (:data:`io.SEGMENTS`):
category SCT 123037004 "Anatomical Structure", type SCT 39607008 "Lung", modifier SCT 24028007 "Right" or
SCT 7771000 "Left". Frame k of the label map is the k-th file of the series as it was read, so each frame
references the source slice it was computed on. A radiograph's frame is on the file's own pixel grid: the
turn to the standard view (PatientOrientation) and any downscaling on reading are undone.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import __version__
from .errors import LungSegError
from .io import SEGMENTS, atomic_path

CATEGORY = ("123037004", "SCT", "Anatomical Structure")
LUNG = ("39607008", "SCT", "Lung")


def check_dicom_source(image) -> None:
    """--dicom-seg needs a DICOM CT series (a folder) or a DICOM radiograph; say so before any work is done on
    other inputs."""
    if image.ndim == 3 and (image.meta.get("dicom_files") or image.meta.get("dicom_frame_order")):
        return
    if image.ndim == 2 and image.meta.get("dicom_radiograph"):
        return
    if image.meta.get("dicom_resampled"):  # frames must be the source slices: a resampled grid is not
        raise LungSegError(f"{image.meta.get('source', 'input')}: --dicom-seg needs the label map on the source "
                           f"slices, and this series was resampled on reading ({image.meta['dicom_resampled']}); "
                           "run without --dicom-seg (lungs.nii.gz and lungs.seg.nrrd are on the resampled grid)")
    if image.meta.get("dicom_multiframe"):
        raise LungSegError(f"{image.meta.get('source', 'input')}: --dicom-seg needs one slice per frame of the "
                           "enhanced (multi-frame) CT, and frames of this file were left out on reading (no "
                           "position, or duplicates); run without --dicom-seg (lungs.nii.gz and lungs.seg.nrrd are "
                           "written)")
    what = "a radiograph picture, not DICOM" if image.ndim == 2 else "not a DICOM series"
    raise LungSegError(f"{image.meta.get('source', 'input')}: --dicom-seg needs a DICOM CT series (a folder of DICOM "
                       f"files) or a DICOM radiograph to reference, and this input is {what}; run without "
                       "--dicom-seg (the label map is always written: lungs.nii.gz and lungs.seg.nrrd, or lungs.png)")


def source_frames(result) -> tuple:
    """(source datasets without pixels, label frames (n, rows, columns)) on the sources' own pixel grids."""
    import pydicom

    if result.image.ndim == 2:  # radiograph: one frame, back on the stored grid of the file
        from .radiograph import labels_at_input_size, stored_view

        source = result.image.meta["dicom_radiograph"]
        ds = pydicom.dcmread(source["file"], stop_before_pixels=True)
        frame = stored_view(np.asarray(labels_at_input_size(result).array, np.uint8), source["turn"])
        if frame.shape != (int(ds.Rows), int(ds.Columns)):
            raise LungSegError(f"{source['file']}: labels of {frame.shape[0]}x{frame.shape[1]} pixels do not fit the "
                               f"image's {ds.Rows}x{ds.Columns}; cannot write --dicom-seg")
        return [ds], frame[None]
    order = result.image.meta.get("dicom_frame_order")
    if order is not None:  # enhanced CT: one source file, slice k of the volume is its frame order[k]
        ds = pydicom.dcmread(result.image.meta["dicom_multiframe"], stop_before_pixels=True)
        labels = np.asarray(result.labels.array, dtype=np.uint8)
        frames = np.zeros((int(ds.NumberOfFrames),) + labels.shape[1:], np.uint8)
        frames[order] = labels
        return [ds], frames
    files = result.image.meta["dicom_files"]
    labels = np.asarray(result.labels.array, dtype=np.uint8)
    if labels.shape[0] != len(files):
        raise LungSegError(f"{result.image.meta.get('source')}: {labels.shape[0]} slices but {len(files)} DICOM files; "
                           "cannot map the label map to the source slices for --dicom-seg")
    return [pydicom.dcmread(f, stop_before_pixels=True) for f in files], labels


def segment_descriptions(result) -> list:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name=f"LungSeg {result.engine}", version=str(result.model.get("version") or __version__),
        family=codes.cid7162.ArtificialIntelligence if result.engine != "hu" else codes.cid7162.MorphologicalOperations)
    out = []
    for value, _, name, colour, (code, meaning) in SEGMENTS:
        description = hd.seg.SegmentDescription(
            segment_number=value, segment_label=name,
            segmented_property_category=hd.sr.CodedConcept(*CATEGORY),
            segmented_property_type=hd.sr.CodedConcept(*LUNG),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            display_color=hd.color.CIELabColor.from_rgb(*(round(255 * c) for c in colour)))
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            hd.sr.CodedConcept(code, "SCT", meaning)]
        out.append(description)
    return out


def write_dicom_seg(result, path) -> None:
    """lungs.seg.dcm for a CT read from a DICOM series or a DICOM radiograph (see module docstring); atomic."""
    import highdicom as hd

    check_dicom_source(result.image)
    sources, labels = source_frames(result)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # highdicom warns about optional attributes the source lacks
            seg = hd.seg.Segmentation(
                source_images=sources, pixel_array=labels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=segment_descriptions(result), series_instance_uid=hd.UID(), series_number=9901,
                sop_instance_uid=hd.UID(), instance_number=1, manufacturer="LungSeg",
                manufacturer_model_name=f"LungSeg {result.engine} {result.model.get('name') or ''}".strip(),
                software_versions=__version__, device_serial_number="none", series_description="LungSeg lungs",
                content_label="LUNGS", content_description="Right and left lung (LungSeg)", omit_empty_frames=False)
    except (ValueError, TypeError, AttributeError) as e:
        raise LungSegError(f"{result.image.meta.get('source')}: cannot build a DICOM SEG from this DICOM input "
                           f"({type(e).__name__}: {str(e)[:200]})") from None
    with atomic_path(path) as tmp:
        seg.save_as(str(tmp), enforce_file_format=True)
