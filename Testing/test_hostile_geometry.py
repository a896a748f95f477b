"""Issue 12, silent wrong measurements from geometry: DICOM without ImagePositionPatient, gantry tilt,
sheared direction matrices, zero pixel spacing on every reader, bad orientation tags, slices of several
sizes. Each case is measured correctly (HU engine, against the untouched series) or refused naming the tag."""

import numpy as np
import pytest
import SimpleITK as sitk

from badinputs import HU, copy_dicom, phantom, raises
from conftest import shared_path
from LungSegLib.io import read_image
from LungSegLib.pipeline import run_case, segment_image

DICOM = ("ct", "cip-copdgene-ct64", "ct-64Dicom")


@pytest.fixture(scope="module")
def reference_ml():
    return run_case(shared_path(*DICOM), HU).measurements["structures"]["both"]["volume_ml"]


def _lung_ml(path):
    result = run_case(path, HU)
    return result.measurements["structures"]["both"]["volume_ml"], result


def _drop(ds, *tags):
    for t in tags:
        if t in ds:
            delattr(ds, t)


def test_no_image_position_on_any_slice_uses_slice_location(tmp_path, reference_ml):
    def to_location(ds, i):
        ds.SliceLocation = float(ds.ImagePositionPatient[2])
        _drop(ds, "ImagePositionPatient")
    ml, result = _lung_ml(copy_dicom(shared_path(*DICOM), tmp_path / "loc", edit=to_location))
    assert ml == pytest.approx(reference_ml, rel=0.01)  # was 1 mm slices: -75 %
    assert result.image.spacing[2] == pytest.approx(3.987, abs=0.01)
    assert any("taken from SliceLocation" in w for w in result.warnings)


def test_no_image_position_nor_slice_location_is_refused_naming_the_tags(tmp_path):
    folder = copy_dicom(shared_path(*DICOM), tmp_path / "none", edit=lambda ds, i: _drop(ds, "ImagePositionPatient"))
    raises(lambda: read_image(folder), "ImagePositionPatient (0020,0032) is missing on 79 of 79",
           "SliceLocation", "spacing cannot be known")


def test_one_slice_without_image_position_is_left_out_not_used_for_spacing(tmp_path, reference_ml):
    def one(ds, i):
        if i == 5:
            _drop(ds, "ImagePositionPatient")
    ml, result = _lung_ml(copy_dicom(shared_path(*DICOM), tmp_path / "one", edit=one))
    assert ml == pytest.approx(reference_ml, rel=0.01)  # was +48 % (spacing from a bad pair)
    assert result.image.array.shape[0] == 79  # the left-out slice's place is interpolated
    assert any("1 slice(s) without ImagePositionPatient" in w for w in result.warnings)
    assert any("resampled from 78 to 79 slices on an even 3.99 mm grid" in w for w in result.warnings)


def test_uneven_slices_are_resampled_to_an_even_grid(tmp_path, reference_ml):
    """Missing slices and a section of thicker slices: each slice counts for the thickness it really has."""
    keep = [i for i in range(79) if not (30 <= i < 50 and i % 2)]  # 20..50: every other slice (7.97 mm)
    ml, result = _lung_ml(copy_dicom(shared_path(*DICOM), tmp_path / "uneven", files=keep))
    assert ml == pytest.approx(reference_ml, rel=0.01)
    assert result.image.array.shape[0] == 79 and result.image.spacing[2] == pytest.approx(3.987, abs=0.01)
    assert any("slices unevenly spaced (3.99..7.98 mm): resampled from 69 to 79" in w for w in result.warnings)


def test_first_two_slices_without_position_sibling(tmp_path, reference_ml):
    def first(ds, i):
        if i < 2:
            _drop(ds, "ImagePositionPatient")
    ml, _ = _lung_ml(copy_dicom(shared_path(*DICOM), tmp_path / "first", edit=first))
    assert ml == pytest.approx(reference_ml, rel=0.03)


@pytest.mark.parametrize("degrees", [15.0, 27.0])
def test_gantry_tilt_is_resampled_to_an_orthogonal_grid(tmp_path, reference_ml, degrees):
    shift = np.tan(np.radians(degrees))

    def tilt(ds, i):
        p = [float(v) for v in ds.ImagePositionPatient]
        p[1] += i * 3.98734 * shift  # the slice stack leans along y: sheared voxels
        ds.ImagePositionPatient = p
    ml, result = _lung_ml(copy_dicom(shared_path(*DICOM), tmp_path / "tilt", edit=tilt))
    assert ml == pytest.approx(reference_ml, rel=0.03)  # was +10 % at 25 degrees
    assert any(f"gantry tilt of {degrees:.1f} degrees" in w for w in result.warnings)
    assert np.allclose(np.asarray(result.image.direction).reshape(3, 3), np.eye(3))


@pytest.mark.parametrize("edit,words", [
    (lambda ds, i: setattr(ds, "PixelSpacing", [0, 0]), ("PixelSpacing (0028,0030) is [0.0, 0.0]",)),
    (lambda ds, i: setattr(ds, "PixelSpacing", [-0.7, -0.7]), ("PixelSpacing (0028,0030) is [-0.7, -0.7]",)),
    (lambda ds, i: _drop(ds, "PixelSpacing"), ("PixelSpacing (0028,0030) is missing",)),
    (lambda ds, i: setattr(ds, "ImageOrientationPatient", [0] * 6), ("ImageOrientationPatient", "zero vector")),
    (lambda ds, i: _drop(ds, "ImageOrientationPatient"), ("ImageOrientationPatient", "missing")),
    (lambda ds, i: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0.5, 0.5, 0]), ("not perpendicular",)),
    (lambda ds, i: setattr(ds, "ImagePositionPatient", [0, 0, 0]), ("share one position",)),
])
def test_impossible_dicom_geometry_is_refused_naming_the_tag(tmp_path, edit, words):
    folder = copy_dicom(shared_path(*DICOM), tmp_path / "bad", edit=edit, files=list(range(12)))
    raises(lambda: read_image(folder), str(folder), *words)


def test_slices_of_two_sizes_keep_the_dominant_size_or_say_so(tmp_path):
    def smaller(ds, i):
        if i == 3:
            ds.Rows, ds.PixelData = 32, ds.PixelData[: len(ds.PixelData) // 2]
    image = read_image(copy_dicom(shared_path(*DICOM), tmp_path / "sizes", edit=smaller))
    assert image.array.shape == (79, 64, 64)  # the left-out slice's place is interpolated
    assert any("mixed slice sizes: 1 slices" in w for w in image.meta["warnings"])

    def half(ds, i):
        if i % 2:
            ds.Rows, ds.PixelData = 32, ds.PixelData[: len(ds.PixelData) // 2]
    folder = copy_dicom(shared_path(*DICOM), tmp_path / "half", edit=half, files=list(range(12)))
    raises(lambda: read_image(folder), "mixes 2 slice sizes", "(64, 32)")


# ------------------------------------------------------------------------------------- other readers
def _nifti(path, arr, affine, pixdim=None):
    import nibabel as nib

    img = nib.Nifti1Image(arr, affine)
    img.header.set_sform(affine, code=1 if pixdim is None else 0)
    img.header.set_qform(affine, code=1 if pixdim is None else 0)
    nib.save(img, str(path))
    if pixdim is not None:  # nibabel refuses to write a zero pixdim: patch the bytes
        raw = bytearray(open(path, "rb").read())
        raw[80:92] = np.asarray(pixdim, "<f4").tobytes()
        raw[252:256] = np.zeros(2, "<i2").tobytes()  # no qform, no sform: pixdim is the geometry
        open(path, "wb").write(bytes(raw))
    return path


def test_zero_pixel_spacing_is_refused_on_every_reader(tmp_path):
    image, _, _ = phantom()
    arr = np.ascontiguousarray(image.array.transpose(2, 1, 0))  # nibabel is (x, y, z)
    p = _nifti(tmp_path / "zero.nii", arr, np.diag([4.0, 4.0, 6.0, 1.0]), pixdim=(0, 0, 0))
    raises(lambda: read_image(p), "pixdim", "(0.0, 0.0, 0.0)", "1 mm")
    p = _nifti(tmp_path / "nan.nii", arr, np.diag([4.0, 4.0, 6.0, 1.0]), pixdim=(4.0, 4.0, np.nan))
    raises(lambda: read_image(p), "pixdim", "nan")
    p = _nifti(tmp_path / "zero_sform.nii", arr, np.diag([4.0, 4.0, 6.0, 1.0]))
    raw = bytearray(p.read_bytes())
    raw[280:328] = np.zeros(12, "<f4").tobytes()  # sform_code 1 with an all-zero srow (nibabel refuses it)
    p.write_bytes(bytes(raw))
    raises(lambda: read_image(p), "sform", "positive")
    p = tmp_path / "zero.mha"
    p.write_text("ObjectType = Image\nNDims = 3\nDimSize = 16 16 16\nElementSpacing = 0 0 0\n"
                 "ElementType = MET_SHORT\nElementDataFile = LOCAL\n")
    with open(p, "ab") as f:
        f.write(bytes(2 * 16 ** 3))
    raises(lambda: read_image(p), "spacing (0.0, 0.0, 0.0)", "positive")
    p = tmp_path / "zero.nrrd"
    p.write_text("NRRD0004\ntype: short\ndimension: 3\nsizes: 16 16 16\nspacings: 0 0 0\nendian: little\n"
                 "encoding: raw\n\n")
    raises(lambda: read_image(p), "spacing (0) invalid")


def test_sheared_nifti_and_nrrd_are_measured_in_physical_space(tmp_path):
    image, truth, volume_ml = phantom()
    arr = np.ascontiguousarray(image.array.transpose(2, 1, 0))
    affine = np.diag([4.0, 4.0, 6.0, 1.0])
    affine[1, 2] = 6.0 * np.tan(np.radians(20))  # k steps lean along y: voxel volume unchanged (det)
    p = _nifti(tmp_path / "sheared.nii.gz", arr, affine)
    result = run_case(p, HU)
    for side in ("right", "left"):  # ellipsoids sheared keep their volume
        assert result.measurements["structures"][side]["volume_ml"] == pytest.approx(volume_ml, rel=0.08)
    assert any("sheared by 20.0 degrees" in w for w in result.warnings)

    img = image.to_sitk()
    d = np.eye(3)
    d[:, 2] = [0.0, np.sin(np.radians(20)), np.cos(np.radians(20))]
    img.SetDirection(tuple(d.ravel()))
    img.SetSpacing((4.0, 4.0, 6.0 / np.cos(np.radians(20))))  # same slice distance along z
    for suffix in (".nrrd", ".mha"):
        sitk.WriteImage(img, str(tmp_path / f"sheared{suffix}"))
        result = run_case(tmp_path / f"sheared{suffix}", HU)
        for side in ("right", "left"):
            assert result.measurements["structures"][side]["volume_ml"] == pytest.approx(volume_ml, rel=0.08)
        assert any("sheared by 20.0 degrees" in w for w in result.warnings)


def test_sheared_in_memory_image_is_refused_by_the_shared_validation():
    """segment_image on an in-memory Image (the Slicer logic's road) cannot count sheared voxels as boxes."""
    image, _, _ = phantom()
    d = np.eye(3)
    d[:, 2] = [0.0, np.sin(np.radians(20)), np.cos(np.radians(20))]
    image.direction = tuple(d.ravel())
    raises(lambda: segment_image(image, HU), "sheared by 20.0 degrees", "orthogonal")


def test_zero_pixel_spacing_of_a_dicom_radiograph_is_refused(tmp_path):
    from badinputs import dx_dicom
    from LungSegLib.params import Parameters

    p = dx_dicom(tmp_path / "zero.dcm", np.full((64, 64), 100, np.uint16) + np.eye(64, dtype=np.uint16),
                 spacing=(0.0, 0.0))
    raises(lambda: run_case(p, Parameters(engine="cxr")), "spacing (0.0, 0.0)", "positive")


def test_zero_pixel_spacing_of_a_single_dicom_ct_file_is_refused(tmp_path):
    folder = copy_dicom(shared_path(*DICOM), tmp_path / "one", files=[40],
                        edit=lambda ds, i: setattr(ds, "PixelSpacing", [0, 0]))
    raises(lambda: read_image(next(folder.iterdir())), "PixelSpacing (0028,0030) is [0.0, 0.0]")


@pytest.mark.parametrize("spacing,words", [((0.0007, 0.0007, 0.0025), "metres or micrometres"),
                                           ((700.0, 700.0, 2500.0), "outside what CT scanners produce")])
def test_spacing_in_the_wrong_unit_is_refused(spacing, words):
    image, _, _ = phantom()
    image.spacing = spacing
    raises(lambda: segment_image(image, HU), words)


def test_a_gap_too_large_to_interpolate_is_refused(tmp_path):
    keep = [i for i in range(79) if not 30 <= i < 45]  # 15 slices (60 mm) missing
    folder = copy_dicom(shared_path(*DICOM), tmp_path / "hole", files=keep)
    raises(lambda: read_image(folder), "gap of 63.8 mm", "15 missing slices", "too large to interpolate")
