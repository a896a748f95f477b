"""Bad-input catalogue of issue 5, groups 1-6 (groups 7-12: test_bad_inputs_more.py). Every case ends in
correct handling or a LungSegError naming the file, what was wrong and what was expected."""

import numpy as np
import pytest
import SimpleITK as sitk

from badinputs import HU, copy_dicom, phantom, raises, write_array, write_phantom
from conftest import SAMPLES, shared_path
from LungSegLib.io import list_cases, read_image
from LungSegLib.params import Parameters
from LungSegLib.pipeline import run_case, segment_image

DICOM = ("ct", "cip-copdgene-ct64", "ct-64Dicom")


# 1. missing path, empty folder, folder with no readable image ------------------------------------------
def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "nowhere.nrrd"
    raises(lambda: read_image(missing), str(missing), "no such file")
    raises(lambda: list_cases([missing]), str(missing), "no such file")


def test_empty_folder_and_folder_without_images(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    raises(lambda: list_cases([empty]), str(empty), "is empty", "expected")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    (junk / "data.csv").write_text("a,b")
    raises(lambda: list_cases([junk]), str(junk), "no readable image", "expected")
    raises(lambda: read_image(junk), str(junk), "no DICOM series", "expected")


# 2. unsupported type, fake and truncated files ---------------------------------------------------------
def test_unsupported_file_type(tmp_path):
    p = tmp_path / "scan.xyz"
    p.write_bytes(b"\0" * 100)
    raises(lambda: read_image(p), str(p), "unsupported file type .xyz", "expected")


@pytest.mark.parametrize("name", ["fake.nii.gz", "fake.nrrd", "fake.mha", "fake.png", "fake.dcm"])
def test_text_file_with_an_image_suffix(tmp_path, name):
    p = tmp_path / name
    p.write_text("this is not an image\n" * 10)
    raises(lambda: read_image(p), str(p), "read", "expected")


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".png"])
def test_truncated_files(tmp_path, suffix):
    full = tmp_path / f"full{suffix}"
    if suffix == ".png":
        from PIL import Image
        Image.fromarray((np.random.default_rng(0).random((128, 128)) * 255).astype(np.uint8)).save(full)
    else:
        write_array(full, np.random.default_rng(0).integers(-1000, 500, (16, 32, 32)).astype(np.int16))
    cut = tmp_path / f"cut{suffix}"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    raises(lambda: read_image(cut), str(cut), "expected a complete")


def test_truncated_dicom_file_in_a_series(tmp_path):
    folder = copy_dicom(shared_path(*DICOM), tmp_path / "series")
    victim = sorted(folder.iterdir())[40]
    victim.write_bytes(victim.read_bytes()[:2000])
    raises(lambda: read_image(victim), str(victim), "truncated", "expected a complete DICOM")
    result = run_case(folder, HU)  # the series is read without the broken file, and the user is told
    assert any(f"not readable DICOM and were ignored: {victim.name}" in w for w in result.warnings)
    assert any("gap of 7.97 mm" in w for w in result.warnings)


# 3. not Hounsfield units ---------------------------------------------------------------------------------
def _non_hu(kind):
    image, _, _ = phantom()
    hu = image.array.astype(np.float32)
    if kind == "0-255":
        return ((hu + 1000) / 1100 * 255).clip(0, 255).astype(np.uint8), "8-bit"
    if kind == "0-4095-no-rescale":
        return (hu + 1024).astype(np.uint16), "rescale intercept"
    if kind == "mr-like":
        return (np.where(hu > -500, 800, 150) + np.random.default_rng(0).normal(0, 30, hu.shape)).astype(
            np.float32), "MR"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["0-255", "0-4095-no-rescale", "mr-like"])
def test_non_hu_volume_is_refused_with_its_range_unless_allowed(tmp_path, kind):
    arr, words = _non_hu(kind)
    p = write_array(tmp_path / f"{kind}.nrrd", arr)
    lo, hi = float(arr.min()), float(arr.max())
    raises(lambda: run_case(p, HU), str(p), f"{lo:.0f}..{hi:.0f}", "Hounsfield", "--allow-non-hu", words)
    result = run_case(p, Parameters(engine="hu", allow_non_hu=True))  # the expert override runs
    assert result.labels.array.shape == arr.shape


def test_dicom_mr_modality_is_refused_for_ct_engines(tmp_path):
    def to_mr(ds, i):
        ds.Modality = "MR"
    folder = copy_dicom(shared_path(*DICOM), tmp_path / "mr", edit=to_mr)
    raises(lambda: run_case(folder, HU), str(folder), "modality MR", "needs CT")


# 4. constant, zero, NaN/Inf, overflow ------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, -1000, 40])
def test_constant_volume(tmp_path, value):
    p = write_array(tmp_path / "const.nrrd", np.full((16, 32, 32), value, np.int16))
    raises(lambda: run_case(p, HU), str(p), f"value {value}", "constant", "expected")


def test_all_nan_and_all_inf(tmp_path):
    for name, v in (("nan", np.nan), ("inf", np.inf)):
        p = write_array(tmp_path / f"{name}.nrrd", np.full((16, 32, 32), v, np.float32))
        raises(lambda: run_case(p, HU), str(p), "NaN or Inf", "expected finite")


def test_some_nan_and_inf_voxels_are_replaced_with_a_warning(tmp_path):
    image, _, _ = phantom()
    arr = image.array.astype(np.float32)
    arr[0, 0, :5] = np.nan
    arr[0, 1, :3] = np.inf
    p = write_array(tmp_path / "holes.nrrd", arr)
    result = run_case(p, HU)
    assert any("8 NaN/Inf voxels" in w for w in result.warnings)
    assert result.measurements["structures"]["both"]["volume_ml"] > 500
    assert np.isfinite(result.measurements["structures"]["both"]["weight_g"])


def test_integer_overflow_ranges(tmp_path):
    image, _, _ = phantom()
    big = image.array.astype(np.int32) * 70000  # values far outside any HU scale
    p = write_array(tmp_path / "overflow.nrrd", big)
    raises(lambda: run_case(p, HU), str(p), "exceed any Hounsfield range", "overflow")
    wrapped = image.array.astype(np.int16).astype(np.uint16)  # -800 read as 64736
    p2 = write_array(tmp_path / "wrapped.nrrd", wrapped)
    raises(lambda: run_case(p2, HU), str(p2), "wrapped around")


# 5. wrong dimensionality / components / slices / scouts -------------------------------------------------
def test_2d_radiograph_to_ct_engine_and_3d_volume_to_cxr_engine():
    png = SAMPLES / "montgomery_MCUCXR_0001_0.png"
    raises(lambda: run_case(png, HU), str(png), "engine hu needs a 3D CT volume", "--engine cxr")
    ct = SAMPLES / "ct-64.nrrd"
    raises(lambda: run_case(ct, Parameters(engine="cxr")), str(ct), "needs a 2D radiograph")


def test_4d_volume_refused_before_reading_but_4d_with_one_frame_is_read(tmp_path):
    p = tmp_path / "4d.nii.gz"
    sitk.WriteImage(sitk.JoinSeries([sitk.GetImageFromArray(np.zeros((8, 16, 16), np.int16))] * 3), str(p))
    raises(lambda: read_image(p), str(p), "4D image", "expected a 3D CT volume")
    image, _, _ = phantom()
    one = sitk.JoinSeries([image.to_sitk()])  # 4D with a single time point
    p1 = tmp_path / "4d1.nii.gz"
    sitk.WriteImage(one, str(p1))
    assert read_image(p1).array.shape == image.array.shape


def test_multicomponent_and_rgb_volumes(tmp_path):
    vec = sitk.GetImageFromArray(np.zeros((8, 16, 16, 3), np.uint8), isVector=True)
    p = tmp_path / "rgb.nrrd"
    sitk.WriteImage(vec, str(p))
    raises(lambda: read_image(p), str(p), "3 components", "single-component")


def test_single_ct_dicom_slice_stays_ct_and_is_refused_with_single_slice():
    one = sorted(shared_path(*DICOM).iterdir())[40]
    image = read_image(one)
    assert image.modality == "CT" and image.array.shape == (1, 64, 64)
    for engine in ("auto", "hu", "ct2d"):
        raises(lambda: segment_image(image, Parameters(engine=engine)), str(one), "single axial slice")
    raises(lambda: segment_image(image, Parameters(engine="cxr")), "single CT slice", "2D radiograph")


def test_single_slice_volume_file_with_hu_values_stays_ct(tmp_path):
    image, _, _ = phantom()
    p = tmp_path / "slice.nii.gz"
    sitk.WriteImage(image.to_sitk()[:, :, 12:13], str(p))
    raises(lambda: run_case(p, Parameters()), str(p), "single axial slice")


def test_few_slices_are_refused(tmp_path):
    image, _, _ = phantom()
    p = tmp_path / "slab.nrrd"
    sitk.WriteImage(image.to_sitk()[:, :, 10:14], str(p))
    raises(lambda: run_case(p, HU), str(p), "fewer than 8")


def _localizer(ds, i):
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]


def test_scout_image_and_scout_series(tmp_path):
    folder = copy_dicom(shared_path(*DICOM), tmp_path / "scout", edit=_localizer, files=[0])
    one = next(folder.iterdir())
    raises(lambda: run_case(one, HU), str(one), "scout/localiser")
    copy_dicom(shared_path(*DICOM), tmp_path / "scouts", edit=_localizer, files=list(range(10)))
    raises(lambda: run_case(tmp_path / "scouts", HU), "scout/localiser", "expected an axial CT series")


def test_scout_images_mixed_into_the_axial_series_are_ignored(tmp_path):
    def first_two(ds, i):
        return _localizer(ds, i) if i < 2 else None
    folder = copy_dicom(shared_path(*DICOM), tmp_path / "mixed", edit=first_two)
    image = read_image(folder)
    assert image.array.shape[0] == 77 and any("2 scout/localiser images ignored" in w for w in image.meta["warnings"])


# 6. DICOM folders: several series, gaps, orientations, duplicates --------------------------------------
def _two_series(tmp_path):
    import pydicom
    from pydicom.uid import generate_uid

    folder = copy_dicom(shared_path(*DICOM), tmp_path / "two")
    uid = generate_uid()
    for p in sorted(folder.iterdir())[:20]:  # a second, shorter series (e.g. a reconstruction)
        ds = pydicom.dcmread(str(p))
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        ds.save_as(str(folder / f"b_{p.name}"))
    return folder, uid


def test_several_series_choose_most_slices_and_say_so_or_let_the_user_pick(tmp_path):
    folder, uid = _two_series(tmp_path)
    image = read_image(folder)
    assert image.array.shape[0] == 79
    assert any("2 DICOM series" in w and "chose" in w and "::UID" in w for w in image.meta["warnings"])
    picked = read_image(f"{folder}::{uid}")
    assert picked.array.shape[0] == 20 and picked.meta["series_uid"] == uid
    assert [n for n, _ in list_cases([f"{folder}::{uid}"])][0].startswith("two_")
    raises(lambda: read_image(f"{folder}::1.2.3"), "no DICOM series '1.2.3'", "series found")


def test_missing_slices_warn_with_the_gap(tmp_path):
    keep = [i for i in range(79) if i not in (40, 41, 42)]
    folder = copy_dicom(shared_path(*DICOM), tmp_path / "gap", files=keep)
    image = read_image(folder)
    gap = [w for w in image.meta["warnings"] if "missing slices" in w]
    assert gap and "gap of 15.95 mm" in gap[0] and "expected 3.99 mm" in gap[0]
    result = segment_image(image, HU)
    assert any("gap of" in w for w in result.warnings)


def test_mixed_orientations_keep_the_dominant_one(tmp_path):
    def tilt(ds, i):
        if i % 10 == 0:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    image = read_image(copy_dicom(shared_path(*DICOM), tmp_path / "mixed", edit=tilt))
    assert image.array.shape[0] == 78  # 71 kept; the places of the 7 inner ones dropped are interpolated
    assert any("mixed orientations: 8 slices" in w for w in image.meta["warnings"])

    def half(ds, i):
        if i % 2:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    folder = copy_dicom(shared_path(*DICOM), tmp_path / "half", edit=half)
    raises(lambda: read_image(folder), str(folder), "mixes 2 slice orientations", "expected one")


def test_duplicate_instances_are_dropped(tmp_path):
    import shutil

    folder = copy_dicom(shared_path(*DICOM), tmp_path / "dups")
    for p in sorted(folder.iterdir())[30:35]:
        shutil.copy(p, folder / f"copy_{p.name}")
    image = read_image(folder)
    assert image.array.shape[0] == 79
    assert any("5 duplicate instances" in w for w in image.meta["warnings"])
    assert np.array_equal(image.array, read_image(shared_path(*DICOM)).array)
