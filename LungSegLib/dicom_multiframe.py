"""Enhanced (multi-frame) CT: the geometry of each frame from the functional groups, not from ITK's guess.

ITK (GDCM) reads the frames of an enhanced CT in file order but takes the voxel size from shared tags only:
when the frames are unevenly spaced (a missing frame) it returns 1 mm voxels in all three directions, and a
tilted stack comes back unsheared, both silently. Here each frame's ImagePositionPatient
(PlanePositionSequence), ImageOrientationPatient (PlaneOrientationSequence) and PixelSpacing
(PixelMeasuresSequence), per frame or shared, become one small header per frame; ``dicom.py`` then orders,
checks and resamples those frames exactly as it does the files of a classic series.
"""

from __future__ import annotations

from .errors import LungSegError

GROUPS = {"PlanePositionSequence": ("ImagePositionPatient",),
          "PlaneOrientationSequence": ("ImageOrientationPatient",),
          "PixelMeasuresSequence": ("PixelSpacing", "SliceThickness"),
          "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept")}


def is_multiframe_volume(ds) -> bool:
    """More than one frame (the caller has ruled out radiographs)."""
    return int(getattr(ds, "NumberOfFrames", 1) or 1) > 1


def _group(item, name: str):
    seq = getattr(item, name, None) if item is not None else None
    return seq[0] if seq else None


def frame_headers(path, ds) -> list | None:
    """``[(name, header)]``, one per frame in file order, each header holding the frame's position,
    orientation, pixel spacing and rescale (per-frame groups win over shared ones), plus Rows, Columns and
    Modality; the name tells duplicates apart, as a SOPInstanceUID does for files. None when the file has
    no per-frame functional groups (a legacy multi-frame file): ITK's reading is then all there is."""
    from pydicom.dataset import Dataset

    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    per_frame = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if not per_frame:
        return None
    if len(per_frame) != frames:
        raise LungSegError(f"{path}: enhanced DICOM has {len(per_frame)} per-frame functional groups for "
                           f"{frames} frames (NumberOfFrames); expected one group per frame")
    shared = _group(ds, "SharedFunctionalGroupsSequence")
    out = []
    for k, item in enumerate(per_frame):
        h = Dataset()
        for name, tags in GROUPS.items():
            group = _group(item, name) or _group(shared, name)
            for tag in tags:
                if group is not None and tag in group:
                    setattr(h, tag, group[tag].value)
        h.Rows, h.Columns, h.Modality = ds.Rows, ds.Columns, getattr(ds, "Modality", "")
        out.append((f"frame {k + 1}", h))
    rescales = {(str(getattr(h, "RescaleSlope", 1)), str(getattr(h, "RescaleIntercept", 0))) for _, h in out}
    if len(rescales) > 1:  # ITK applies one rescale to every frame: other frames would be in wrong units
        raise LungSegError(f"{path}: enhanced DICOM frames have {len(rescales)} different rescale slopes/intercepts "
                           f"(e.g. {sorted(rescales)[:2]}); expected one rescale (HU) for all frames")
    return out
