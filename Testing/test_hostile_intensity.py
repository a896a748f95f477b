"""Issue 12: an intensity scale that makes HU impossible (NIfTI scl_slope 2, DICOM RescaleSlope 2, a
compressed scale) is refused naming the scaling tag; the QC checks the values the measurements use;
padding values below any HU scale (-32768) are handled like -3024."""

import numpy as np
import pytest

from badinputs import HU, copy_dicom, phantom, raises
from conftest import shared_path
from LungSegLib.hu_check import lung_hu_flags
from LungSegLib.io import read_image
from LungSegLib.params import Parameters
from LungSegLib.pipeline import run_case, segment_image

DICOM = ("ct", "cip-copdgene-ct64", "ct-64Dicom")


def _nifti_scaled(path, slope, inter=0.0):
    import nibabel as nib

    image, _, _ = phantom(noise_hu=10.0)
    arr = np.ascontiguousarray(image.array.transpose(2, 1, 0))
    img = nib.Nifti1Image(arr.astype(np.int16), np.diag([-4.0, -4.0, 6.0, 1.0]))
    img.header.set_slope_inter(slope, inter)
    nib.save(img, str(path))
    return path


def test_nifti_scl_slope_2_is_refused_naming_the_scaling(tmp_path):
    p = _nifti_scaled(tmp_path / "slope2.nii.gz", 2.0)
    raises(lambda: run_case(p, HU), "not plausible Hounsfield units", "below -1150 HU", "NIfTI scl_slope 2",
           "--allow-non-hu")
    forced = run_case(p, Parameters(engine="hu", allow_non_hu=True))  # experts may run it: QC says why
    assert {"lung_hu_below_air", "lung_mean_hu_implausible"} <= set(forced.qc["flags"])
    assert forced.qc["hu_plausibility"]["lung_mean_hu"] < -1500


def test_compressed_scale_is_refused(tmp_path):
    p = _nifti_scaled(tmp_path / "slope_half.nii.gz", 0.5)
    raises(lambda: run_case(p, HU), "no air near -1000 HU", "compressed", "scl_slope 0.5")


@pytest.mark.parametrize("tag,value,words", [("RescaleSlope", 2, ("below -1150 HU", "DICOM RescaleSlope 2")),
                                             ("RescaleIntercept", -2048, ("below -1150 HU", "RescaleIntercept -2048")),
                                             ("RescaleSlope", 0.5, ("no air near -1000 HU", "RescaleSlope 0.5"))])
def test_dicom_rescale_siblings_are_refused(tmp_path, tag, value, words):
    def edit(ds, i):
        setattr(ds, tag, value)
    folder = copy_dicom(shared_path(*DICOM), tmp_path / "scaled", edit=edit, files=list(range(20, 40)))
    raises(lambda: run_case(folder, HU), *words)


def test_real_scales_pass_and_get_no_hu_flags():
    result = run_case(shared_path("ct", "cip-copdgene-ct64", "ct-64.nrrd"), HU)
    hu_flags = {"lung_hu_below_air", "lung_mean_hu_implausible", "soft_tissue_peak_off"}
    assert not hu_flags & set(result.qc["flags"])
    assert -950 < result.qc["hu_plausibility"]["lung_mean_hu"] < -600


def test_soft_tissue_peak_away_from_zero_is_flagged():
    image, truth, _ = phantom(body_hu=300.0)
    flags, details = lung_hu_flags(image.array, truth > 0)
    assert "soft_tissue_peak_off" in flags and details["soft_tissue_peak_hu"] > 150
    image, truth, _ = phantom()
    assert "soft_tissue_peak_off" not in lung_hu_flags(image.array, truth > 0)[0]


def _padded(pad):
    image, _, _ = phantom(shape=(24, 48, 48))
    z, y, x = np.ogrid[:24, :48, :48]
    outside = (y - 23.5) ** 2 + (x - 23.5) ** 2 > 23.5 ** 2  # outside the circular field of view
    arr = image.array.astype(np.int16 if pad >= -32768 else np.int32)
    arr[np.broadcast_to(outside, arr.shape)] = pad
    return image.with_array(arr)


@pytest.mark.parametrize("pad", [-32768, -10000])
def test_padding_below_any_hu_scale_is_handled_like_minus_3024(pad):
    reference = segment_image(_padded(-3024), HU).measurements["structures"]
    result = segment_image(_padded(pad), HU)
    for side in ("right", "left", "both"):
        assert result.measurements["structures"][side]["volume_ml"] == pytest.approx(reference[side]["volume_ml"])
        assert result.measurements["structures"][side]["weight_g"] == pytest.approx(reference[side]["weight_g"])
    assert any(f"padding value {pad}" in w and "-3024" in w for w in result.warnings)


def test_padding_minus_2048_is_accepted_and_garbage_below_scale_still_refused():
    assert segment_image(_padded(-2048), HU).measurements["structures"]["both"]["volume_ml"] > 300
    image = _padded(-3024)
    arr = image.array.astype(np.int32)
    arr[0, 0, :10] = np.arange(-40000, -30000, 1000)  # many different values: not a padding value
    raises(lambda: segment_image(image.with_array(arr), HU), "exceed any Hounsfield range")


def test_noisy_low_dose_air_is_not_mistaken_for_a_wrong_scale():
    image, _, _ = phantom(noise_hu=120.0)  # air -1000 +- 120 HU: 10 % of the air below -1150
    from LungSegLib.hu_check import scale_problem

    assert (image.array < -1150).mean() > 0.03 and scale_problem(image.array) is None
