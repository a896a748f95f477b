"""Exact checks of the measurements on phantoms with analytic answers."""

import numpy as np
import pytest
from conftest import dice

from LungSegLib.measure import BANDS, hu_calibration, measure_ct, measure_cxr
from LungSegLib.params import Parameters
from LungSegLib.phantom import chest_phantom
from LungSegLib.pipeline import segment_image


@pytest.mark.parametrize("lung_hu", [-850.0, -600.0, -300.0])
def test_phantom_volume_and_weight_match_analytic_values(lung_hu):
    image, labels, volume_ml = chest_phantom(shape=(128, 160, 200), spacing=(1.0, 1.0, 1.25), lung_hu=lung_hu)
    m = measure_ct(labels, image.array, image.voxel_volume_ml, density=1.0)["structures"]
    tissue = (lung_hu + 1000.0) / 1000.0
    for side in ("right", "left"):
        assert m[side]["volume_ml"] == pytest.approx(volume_ml, rel=0.01)
        assert m[side]["weight_g"] == pytest.approx(volume_ml * tissue, rel=0.01)
        assert m[side]["gas_volume_ml"] == pytest.approx(volume_ml * (1 - tissue), rel=0.01)
        assert m[side]["mean_hu"] == pytest.approx(lung_hu)
    assert m["both"]["volume_ml"] == pytest.approx(2 * volume_ml, rel=0.01)


def test_hu_engine_on_phantom_recovers_analytic_volume_and_weight():
    image, labels, volume_ml = chest_phantom(lung_hu=-800.0)
    result = segment_image(image, Parameters(engine="hu", density=1.05))
    m = result.measurements["structures"]
    for side in ("right", "left"):
        assert m[side]["volume_ml"] == pytest.approx(volume_ml, rel=0.01)
        assert m[side]["weight_g"] == pytest.approx(volume_ml * 0.2 * 1.05, rel=0.01)
    for side in (1, 2):  # same voxels, same sides (1 = right = the phantom's negative-x lung)
        assert dice(result.labels.array == side, labels == side) > 0.999
    assert "1.05 g/mL" in result.measurements["method"]["weight"]


def test_weight_rule_clips_tissue_fraction_above_zero_hu_and_below_minus_1000():
    labels = np.ones((1, 1, 4), np.uint8)
    hu = np.array([[[-1100.0, -1000.0, 0.0, 300.0]]])
    m = measure_ct(labels, hu, voxel_ml=1.0)["structures"]["right"]
    assert m["weight_g"] == pytest.approx(2.0)   # 0 + 0 + 1 + 1 (HU > 0 counts as pure tissue)
    assert m["gas_volume_ml"] == pytest.approx(2.0)


def test_hu_bands_sum_to_one_and_follow_cutoffs():
    rng = np.random.default_rng(1)
    hu = rng.uniform(-1000, 100, size=(20, 20, 20))
    labels = np.where(np.arange(20)[None, None, :] < 10, 1, 2).astype(np.uint8) * np.ones_like(hu, np.uint8)
    m = measure_ct(labels, hu, voxel_ml=0.5)["structures"]
    for s in m.values():
        assert sum(s[f"{b}_volume_fraction"] for b, _, _ in BANDS) == pytest.approx(1.0)
        assert sum(s[f"{b}_weight_fraction"] for b, _, _ in BANDS) == pytest.approx(1.0)
    expected = ((hu >= -900) & (hu < -500)).mean()
    assert m["both"]["normally_aerated_volume_fraction"] == pytest.approx(expected)


def test_empty_mask_gives_zero_measurements_not_nan():
    m = measure_ct(np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 4)), 1.0)["structures"]["both"]
    assert m["volume_ml"] == 0 and m["weight_g"] == 0 and m["mean_hu"] == 0


def test_cxr_area_in_cm2_only_when_spacing_known():
    from LungSegLib.image import CXR, Image

    labels = np.zeros((100, 100), np.uint8)
    labels[10:60, 10:40], labels[10:60, 60:90] = 1, 2
    img = Image(np.zeros((100, 100), np.float32), spacing=(0.2, 0.2), modality=CXR)
    m = measure_cxr(labels, img)
    assert m["structures"]["right"]["area_cm2"] == pytest.approx(1500 * 0.04 / 100 * 100 / 100 * 1)  # 1500 px
    assert m["right_left_area_ratio"] == pytest.approx(1.0)
    img.spacing_known = False
    assert measure_cxr(labels, img)["structures"]["right"]["area_cm2"] is None


def test_hu_calibration_flags_shifted_air():
    image, _, _ = chest_phantom()
    assert hu_calibration(image.array)["ok"]
    assert not hu_calibration(image.array.astype(np.float32) + 120)["ok"]
