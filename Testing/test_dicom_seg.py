"""DICOM SEG output (--dicom-seg) read back with highdicom/pydicom: frames map to the same voxels as
lungs.nii.gz, references are the input's SOP instances, segment labels and codes are right."""

import csv

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SAMPLES, shared_path

from LungSegLib.cli import main
from LungSegLib.io import read_image
from LungSegLib.phantom import chest_phantom

hd = pytest.importorskip("highdicom")
pydicom = pytest.importorskip("pydicom")


def write_series(folder, image, position="HFP"):
    """A CT series of ``image`` (identity direction) stored as a prone scan would be: image rows running
    posterior->anterior and columns left->right (IOP -1 0 0 0 -1 0); files named in a shuffled order."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    arr = image.array[:, ::-1, ::-1]  # flip rows and columns to match the prone orientation below
    sx, sy, sz = image.spacing
    nz, ny, nx = arr.shape
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    corner = np.asarray(image.origin) + [(nx - 1) * sx, (ny - 1) * sy, 0.0]  # LPS of row 0, column 0
    order = np.random.default_rng(0).permutation(nz)
    for k in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientPosition, ds.PatientName, ds.PatientID = "CT", position, "Phantom^Prone", "P1"
        ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime = "", "O", "20260101", "120000"
        ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID, ds.SeriesNumber = "", "", "1", 1
        ds.InstanceNumber, ds.Manufacturer, ds.ImageType = k + 1, "test", ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [-1, 0, 0, 0, -1, 0]
        ds.ImagePositionPatient = [float(corner[0]), float(corner[1]), float(image.origin[2] + k * sz)]
        ds.PixelSpacing, ds.SliceThickness = [sy, sx], sz
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = ny, nx, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.ascontiguousarray(arr[k]).astype(np.int16).tobytes()
        ds.save_as(str(folder / f"slice{order[k]:03d}.dcm"), enforce_file_format=True)
    return folder


def check_seg_against_nifti(case_dir, series_dir):
    seg = hd.seg.segread(str(case_dir / "lungs.seg.dcm"))
    sources = {}
    for f in series_dir.iterdir():
        if f.suffix == ".dcm":
            ds = pydicom.dcmread(str(f), stop_before_pixels=True)
            sources[ds.SOPInstanceUID] = ds
    assert {uid for _, _, uid in seg.get_source_image_uids()} == set(sources)
    labels = sitk.ReadImage(str(case_dir / "lungs.nii.gz"))
    lab = sitk.GetArrayFromImage(labels)
    uids = list(sources)
    frames = seg.get_pixels_by_source_instance(uids, segment_numbers=[1, 2], combine_segments=True)
    assert frames.shape == (len(uids), lab.shape[1], lab.shape[2])
    for uid, frame in zip(uids, frames):  # each frame against the slice at its source's position
        ds = sources[uid]
        k = labels.TransformPhysicalPointToIndex([float(v) for v in ds.ImagePositionPatient])[2]
        assert labels.TransformPhysicalPointToIndex([float(v) for v in ds.ImagePositionPatient])[:2] == (0, 0)
        assert np.array_equal(frame, lab[k])
    assert lab.sum() > 0 and frames.max() == 2
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Right lung", "Left lung"]
    for s, modifier in zip(seg.SegmentSequence, ("24028007", "7771000")):
        assert s.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "123037004"
        assert s.SegmentedPropertyTypeCodeSequence[0].CodeValue == "39607008"
        assert s.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == modifier
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == next(iter(sources.values())).StudyInstanceUID
    return seg


def test_prone_phantom_series_seg_maps_to_nifti_voxels_and_position_is_read(tmp_path):
    image, truth, _ = chest_phantom(shape=(40, 56, 64), spacing=(3.0, 3.0, 4.0))
    series = write_series(tmp_path / "prone", image)
    read = read_image(series)
    assert read.meta["patient_position"] == "HFP"
    assert np.array_equal(read.array[:, ::-1, ::-1], image.array)  # the prone series holds the same voxels
    out = tmp_path / "out"
    assert main(["segment", str(series), "-o", str(out), "--engine", "hu", "--quiet", "--dicom-seg"]) == 0
    check_seg_against_nifti(out / "prone", series)
    import json

    regions = json.loads((out / "prone" / "measurements.json").read_text())["regions"]
    assert regions["position"] == "prone" and "HFP" in regions["position_source"]
    nifti = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "prone" / "lungs.nii.gz")))[:, ::-1, ::-1]
    for value in (1, 2):  # the patient's right lung is label 1 whatever the storage orientation
        a, b = nifti == value, truth == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.95


def test_real_ct_series_seg_references_every_input_slice(tmp_path):
    series = shared_path("ct", "cip-copdgene-ct64", "ct-64Dicom")
    out = tmp_path / "out"
    assert main(["segment", str(series), "-o", str(out), "--engine", "hu", "--quiet", "--dicom-seg"]) == 0
    seg = check_seg_against_nifti(out / "ct-64Dicom", series)
    assert seg.NumberOfFrames == 2 * 79
    assert "lungs.seg.dcm" in (out / "index.html").read_text()


def radiograph_dicom(path, upright, orientation, turn):
    """A DX file holding ``turn(upright)`` whose PatientOrientation says how to turn it back, with the study
    attributes a DICOM SEG copies."""
    from badinputs import dx_dicom
    from pydicom.uid import generate_uid

    p = dx_dicom(path, np.ascontiguousarray(turn(upright)))
    ds = pydicom.dcmread(str(p))
    ds.PatientOrientation = orientation
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = generate_uid(), generate_uid(), "CXR1"
    ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime = "", "O", "20260101", "120000"
    ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "", "", "1", 1, 1
    ds.save_as(str(p))
    return p


@pytest.mark.parametrize("orientation,turn,max_side", [(["R", "H"], lambda a: a[::-1, ::-1], 4096),
                                                       (["F", "L"], lambda a: a.T, 4096),
                                                       (["L", "F"], lambda a: a, 100)])  # read downscaled by 3
def test_radiograph_seg_lies_on_the_files_own_pixel_grid(tmp_path, monkeypatch, orientation, turn, max_side):
    from PIL import Image as PILImage

    from LungSegLib import radiograph

    monkeypatch.setattr(radiograph, "MAX_SIDE", max_side)
    upright = np.asarray(PILImage.open(SAMPLES / "montgomery_MCUCXR_0001_0.png").convert("L").resize((256, 240)),
                         np.uint16) * 16
    p = radiograph_dicom(tmp_path / "cxr.dcm", upright, orientation, turn)
    out = tmp_path / "out"
    assert main(["segment", str(p), "-o", str(out), "--engine", "cxr", "--quiet", "--dicom-seg"]) == 0
    seg = hd.seg.segread(str(out / "cxr" / "lungs.seg.dcm"))
    source = pydicom.dcmread(str(p), stop_before_pixels=True)
    assert [uid for _, _, uid in seg.get_source_image_uids()] == [source.SOPInstanceUID]
    frame = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1, 2], combine_segments=True)[0]
    png = np.asarray(PILImage.open(out / "cxr" / "lungs.png"))  # upright, at the input size
    assert png.shape == upright.shape and frame.shape == (source.Rows, source.Columns)
    assert np.array_equal(frame, turn(png)) and set(np.unique(frame)) == {0, 1, 2}
    right_columns = np.nonzero(png == 1)[1]  # the patient's right lung on the image left of the standard view
    assert right_columns.mean() < np.nonzero(png == 2)[1].mean()
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.Rows == source.Rows


def test_dicom_seg_for_a_non_dicom_input_is_a_clear_failure(tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(SAMPLES / "ct-64.nrrd"), "-o", str(out), "--engine", "hu", "--quiet",
                 "--dicom-seg"]) == 1
    with open(out / "errors.csv", newline="") as f:
        error = next(csv.DictReader(f))["error"]
    assert "--dicom-seg needs a DICOM CT series" in error and "not a DICOM series" in error
    assert main(["segment", str(SAMPLES / "montgomery_MCUCXR_0001_0.png"), "-o", str(out), "--engine", "cxr",
                 "--quiet", "--dicom-seg"]) == 1  # a radiograph picture has no DICOM instance to reference
    with open(out / "errors.csv", newline="") as f:
        errors = [row["error"] for row in csv.DictReader(f)]
    assert any("DICOM radiograph" in e and "a radiograph picture, not DICOM" in e for e in errors), errors
    assert not (out / "ct-64").exists()


def test_dicom_seg_for_a_series_resampled_on_reading_is_a_clear_failure(tmp_path):
    """Issue 12 resamples unevenly spaced (and tilted) series: the label map's slices are then not the source
    slices, so a DICOM SEG would reference the wrong instances; refused with the reason."""
    image, _, _ = chest_phantom(shape=(40, 56, 64), spacing=(3.0, 3.0, 4.0))
    series = write_series(tmp_path / "uneven", image)
    for f in sorted(series.iterdir()):  # drop one slice in the middle: a 2-step gap, resampled on reading
        if pydicom.dcmread(str(f), stop_before_pixels=True).InstanceNumber == 20:
            f.unlink()
    assert "resampled" in read_image(series).meta["dicom_resampled"]
    out = tmp_path / "out"
    assert main(["segment", str(series), "-o", str(out), "--engine", "hu", "--quiet", "--dicom-seg"]) == 1
    with open(out / "errors.csv", newline="") as f:
        error = next(csv.DictReader(f))["error"]
    assert "--dicom-seg needs the label map on the source slices" in error and "unevenly spaced" in error
    assert not (out / "uneven").exists()
    assert main(["segment", str(series), "-o", str(out), "--engine", "hu", "--quiet"]) == 0  # without: fine
