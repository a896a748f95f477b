"""Enhanced (multi-frame) CT: the bundled CIP CT (samples/ct-64.nrrd), written as a classic DICOM series and
converted to one Legacy Converted Enhanced CT file (highdicom), reads to the series' voxels and geometry.
Frames are placed by their functional groups, not by ITK's shared-tag reading, which returns 1 mm voxels for
a stack with a missing frame and ignores a tilt."""

import copy
import csv
import warnings

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SAMPLES

from LungSegLib.cli import main
from LungSegLib.errors import LungSegError
from LungSegLib.io import read_image

hd = pytest.importorskip("highdicom")
pydicom = pytest.importorskip("pydicom")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """The bundled CIP CT as a classic DICOM series (one file per slice)."""
    from test_dicom_seg import write_series

    return write_series(tmp_path_factory.mktemp("cip") / "series", read_image(SAMPLES / "ct-64.nrrd"))


@pytest.fixture(scope="module")
def slices(series):
    """The series' slices, sorted from feet to head."""
    ds = [pydicom.dcmread(str(f)) for f in sorted(series.iterdir()) if f.is_file()]
    return sorted(ds, key=lambda d: float(d.ImagePositionPatient[2]))


@pytest.fixture(scope="module")
def series_image(series):
    return read_image(series)


def enhanced(slices, path, edit=None):
    """One enhanced CT file of ``slices`` (frames in the given order); ``edit(dataset)`` changes it first."""
    from pydicom.uid import generate_uid

    with warnings.catch_warnings():  # highdicom warns about the anonymised one-part patient name
        warnings.simplefilter("ignore")
        e = hd.legacy.LegacyConvertedEnhancedCTImage(slices, series_instance_uid=generate_uid(), series_number=9,
                                                     sop_instance_uid=generate_uid(), instance_number=1)
    if edit:
        edit(e)
    e.save_as(str(path))
    return path


def hu_volume_ml(tmp_path, source, name):
    assert main(["segment", str(source), "-o", str(tmp_path / name), "--engine", "hu", "--quiet"]) == 0
    rows = list(csv.DictReader(open(tmp_path / name / "measurements.csv")))
    return sum(float(r["volume_ml"]) for r in rows if r["structure"] in ("right", "left"))


def test_enhanced_ct_reads_like_its_series_and_measures_the_same(tmp_path, series, slices, series_image):
    path = enhanced(slices, tmp_path / "enhanced.dcm")
    image = read_image(path)
    assert np.array_equal(image.array, series_image.array)
    assert np.allclose(image.spacing, series_image.spacing) and np.allclose(image.origin, series_image.origin)
    assert image.meta["dicom_multiframe"] == str(path)
    folder = tmp_path / "folder"  # a folder holding the one file reads the same
    folder.mkdir()
    path.rename(folder / "enhanced.dcm")
    assert np.array_equal(read_image(folder).array, series_image.array)
    assert hu_volume_ml(tmp_path, folder, "enh") == pytest.approx(hu_volume_ml(tmp_path, series, "ser"), rel=1e-6)


def test_frames_stored_out_of_order_are_placed_by_their_positions(tmp_path, slices, series_image):
    order = np.random.default_rng(3).permutation(len(slices))
    image = read_image(enhanced([slices[i] for i in order], tmp_path / "shuffled.dcm"))
    assert np.array_equal(image.array, series_image.array)


def test_missing_frame_keeps_the_voxel_size_itk_would_lose(tmp_path, series, slices, series_image):
    path = enhanced([s for k, s in enumerate(slices) if not 30 <= k < 34], tmp_path / "gap.dcm")
    assert sitk.ReadImage(str(path)).GetSpacing() == (1.0, 1.0, 1.0)  # ITK alone: 1 mm voxels, silently
    image = read_image(path)
    assert np.allclose(image.spacing, series_image.spacing, rtol=1e-4)
    assert image.array.shape == series_image.array.shape  # the gap is interpolated back onto the even grid
    assert any("gap of" in w for w in image.meta["warnings"])
    full, gap = hu_volume_ml(tmp_path, series, "full"), hu_volume_ml(tmp_path, path, "gap")
    assert gap == pytest.approx(full, rel=0.03)


def test_tilted_frames_are_resampled_as_a_tilted_series_is(tmp_path, slices, series_image):
    tilted = []
    for k, s in enumerate(slices):
        t = copy.deepcopy(s)
        x, y, z = (float(v) for v in s.ImagePositionPatient)
        t.ImagePositionPatient = [x, y + k * float(s.SliceThickness) * np.tan(np.radians(15)), z]
        tilted.append(t)
    image = read_image(enhanced(tilted, tmp_path / "tilt.dcm"))
    assert any("gantry tilt of 15.0 degrees" in w for w in image.meta["warnings"])
    assert np.allclose(image.spacing, series_image.spacing, rtol=1e-4)
    assert image.array.shape[1] > series_image.array.shape[1]  # the sheared stack spans more rows


def test_frames_with_different_rescales_are_refused(tmp_path, slices):
    def edit(e):
        e.PerFrameFunctionalGroupsSequence[5].PixelValueTransformationSequence = copy.deepcopy(
            e.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence)
        e.PerFrameFunctionalGroupsSequence[5].PixelValueTransformationSequence[0].RescaleIntercept = -1000

    with pytest.raises(LungSegError, match="different rescale"):
        read_image(enhanced(slices, tmp_path / "rescale.dcm", edit))


def test_missing_pixel_spacing_is_refused_not_read_as_1_mm(tmp_path, slices):
    def edit(e):
        del e.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing

    with pytest.raises(LungSegError, match="PixelSpacing"):
        read_image(enhanced(slices, tmp_path / "nospacing.dcm", edit))


def test_dicom_seg_of_an_enhanced_ct_references_its_frames(tmp_path, slices):
    """Frames stored out of order: SEG frame k (for source frame k) holds the label slice at that frame's
    position in lungs.nii.gz."""
    order = np.random.default_rng(5).permutation(len(slices))
    path = enhanced([slices[i] for i in order], tmp_path / "enhanced.dcm")
    out = tmp_path / "out"
    assert main(["segment", str(path), "-o", str(out), "--engine", "hu", "--dicom-seg", "--quiet"]) == 0
    seg = hd.seg.segread(str(out / "enhanced" / "lungs.seg.dcm"))
    source = pydicom.dcmread(str(path), stop_before_pixels=True)
    n = int(source.NumberOfFrames)
    frames = seg.get_pixels_by_source_frame(source.SOPInstanceUID, list(range(1, n + 1)), segment_numbers=[1, 2],
                                            combine_segments=True)
    labels = sitk.ReadImage(str(out / "enhanced" / "lungs.nii.gz"))
    lab = sitk.GetArrayFromImage(labels)
    assert frames.shape == (n,) + lab.shape[1:] and frames.max() == 2
    for k, group in enumerate(source.PerFrameFunctionalGroupsSequence):
        ipp = [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
        index = labels.TransformPhysicalPointToIndex(ipp)
        assert index[:2] == (0, 0) and np.array_equal(frames[k], lab[index[2]])


def test_dicom_seg_of_an_enhanced_ct_resampled_on_reading_is_a_clear_failure(tmp_path, slices, capsys):
    path = enhanced([s for k, s in enumerate(slices) if not 30 <= k < 34], tmp_path / "gap.dcm")
    code = main(["segment", str(path), "-o", str(tmp_path / "out"), "--engine", "hu", "--dicom-seg", "--quiet"])
    assert code != 0
    assert "resampled on reading" in capsys.readouterr().err
