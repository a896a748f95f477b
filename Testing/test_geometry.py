"""Orientation and format invariance: the mask follows the anatomy in physical space, whatever the
voxel order or file format of the input."""

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import SAMPLES, shared_path
from LungSegLib.image import Image, from_canonical, to_canonical
from LungSegLib.io import read_image
from LungSegLib.params import Parameters
from LungSegLib.pipeline import run_case, segment_image

HU = Parameters(engine="hu")
CT64 = SAMPLES / "ct-64.nrrd"


@pytest.fixture(scope="module")
def reference():
    return run_case(CT64, HU)


def _labels_on_reference_grid(labels: Image, ref: Image) -> np.ndarray:
    out = sitk.Resample(labels.to_sitk(), ref.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(out)


@pytest.mark.parametrize("change", ["flip_x", "flip_yz", "permute_xyz", "permute_zxy"])
def test_flipped_and_permuted_inputs_give_the_same_physical_mask(reference, tmp_path, change):
    img = sitk.ReadImage(str(CT64))
    changed = {"flip_x": lambda i: sitk.Flip(i, [True, False, False]),
               "flip_yz": lambda i: sitk.Flip(i, [False, True, True]),
               "permute_xyz": lambda i: sitk.PermuteAxes(i, [1, 0, 2]),
               "permute_zxy": lambda i: sitk.PermuteAxes(i, [2, 0, 1])}[change](img)
    path = tmp_path / f"{change}.nii.gz"
    sitk.WriteImage(changed, str(path))
    result = run_case(path, HU)
    assert result.labels.array.shape == result.image.array.shape  # labels on the input's own grid
    back = _labels_on_reference_grid(result.labels, reference.labels)
    assert np.array_equal(back, reference.labels.array)


def test_oblique_direction_moves_the_mask_with_the_image(reference):
    img = reference.image
    angle = np.deg2rad(12)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    oblique = Image(img.array.copy(), img.spacing, tuple(rot @ np.asarray(img.origin)),
                    tuple((rot @ np.asarray(img.direction).reshape(3, 3)).ravel()))
    result = segment_image(oblique, HU)
    assert np.array_equal(result.labels.array, reference.labels.array)
    assert result.labels.direction == oblique.direction


def test_canonical_round_trip_is_exact():
    img = sitk.PermuteAxes(sitk.Flip(sitk.ReadImage(str(CT64)), [True, False, True]), [2, 1, 0])
    image = Image.from_sitk(img)
    canonical = to_canonical(image)
    assert canonical.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert np.array_equal(from_canonical(canonical.array, canonical, image), image.array)


def test_right_lung_is_on_the_patients_right(reference):
    """Label 1 lies at smaller LPS x (patient's right) than label 2."""
    labels = reference.labels
    m = labels.ijk_to_lps()
    xs = {}
    for value in (1, 2):
        k, j, i = np.nonzero(labels.array == value)
        xs[value] = (m @ np.stack([i, j, k, np.ones_like(i)]).astype(float))[0].mean()
    assert xs[1] < xs[2]


def test_dicom_series_and_nrrd_give_identical_results(reference):
    folder = shared_path("ct", "cip-copdgene-ct64", "ct-64Dicom")
    result = run_case(folder, HU)
    assert result.image.array.shape == reference.image.array.shape
    assert np.allclose(result.image.origin, reference.image.origin, atol=1e-3)
    assert np.array_equal(result.labels.array, reference.labels.array)
    assert result.measurements["structures"]["both"]["volume_ml"] == pytest.approx(
        reference.measurements["structures"]["both"]["volume_ml"], rel=1e-5)


@pytest.mark.parametrize("suffix", [".mha", ".nii", ".nrrd"])
def test_volume_formats_read_the_same_voxels_and_geometry(tmp_path, suffix):
    ref = read_image(CT64)
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(ref.to_sitk(), str(path))
    got = read_image(path)
    assert np.array_equal(got.array, ref.array)
    assert np.allclose(got.spacing, ref.spacing) and np.allclose(got.origin, ref.origin, atol=1e-4)


def test_single_dicom_file_of_a_ct_series_is_read_as_a_slice(tmp_path):
    folder = shared_path("ct", "cip-copdgene-ct64", "ct-64Dicom")
    one = sorted(folder.iterdir())[40]
    image = read_image(one)
    assert image.array.ndim == 2 or min(image.array.shape) == 1
