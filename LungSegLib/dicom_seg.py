"""DICOM Segmentation output (``--dicom-seg``): lungs.seg.dcm, a binary DICOM SEG object made with highdicom
that references the input CT series, so the lungs go back to a PACS or a DICOM viewer.

Segments "Right lung" (1) and "Left lung" (2) carry the codes of the Slicer segments (:data:`io.SEGMENTS`):
category SCT 123037004 "Anatomical Structure", type SCT 39607008 "Lung", modifier SCT 24028007 "Right" or
SCT 7771000 "Left". Frame k of the label map is the k-th file of the series as it was read, so each frame
references the source slice it was computed on.
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
    """--dicom-seg needs a DICOM CT series (a folder); say so before any work is done on other inputs."""
    if image.ndim == 3 and image.meta.get("dicom_files"):
        return
    if image.meta.get("dicom_resampled"):  # frames must be the source slices: a resampled grid is not
        raise LungSegError(f"{image.meta.get('source', 'input')}: --dicom-seg needs the label map on the source "
                           f"slices, and this series was resampled on reading ({image.meta['dicom_resampled']}); "
                           "run without --dicom-seg (lungs.nii.gz and lungs.seg.nrrd are on the resampled grid)")
    what = "a radiograph" if image.ndim == 2 else "not a DICOM series"
    raise LungSegError(f"{image.meta.get('source', 'input')}: --dicom-seg needs a DICOM CT series (a folder of DICOM "
                       f"files) to reference, and this input is {what}; run without --dicom-seg (lungs.nii.gz and "
                       "lungs.seg.nrrd are always written) or give the DICOM series")


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
    """lungs.seg.dcm for a CT read from a DICOM series (see module docstring); atomic."""
    import highdicom as hd
    import pydicom

    check_dicom_source(result.image)
    files = result.image.meta["dicom_files"]
    labels = np.asarray(result.labels.array, dtype=np.uint8)
    if labels.shape[0] != len(files):
        raise LungSegError(f"{result.image.meta.get('source')}: {labels.shape[0]} slices but {len(files)} DICOM files; "
                           "cannot map the label map to the source slices for --dicom-seg")
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
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
        raise LungSegError(f"{result.image.meta.get('source')}: cannot build a DICOM SEG from this series "
                           f"({type(e).__name__}: {str(e)[:200]})") from None
    with atomic_path(path) as tmp:
        seg.save_as(str(tmp), enforce_file_format=True)
