"""Regional CT measurements: exact answers on box phantoms, analytic slabs of the ellipsoid phantom, regions
adding up to the totals on the bundled CT, patient position."""

import math

import numpy as np
import pytest
from conftest import SAMPLES

from LungSegLib.errors import LungSegError
from LungSegLib.image import Image
from LungSegLib.io import read_image
from LungSegLib.measure import BANDS, measure_ct
from LungSegLib.options import CaseOptions
from LungSegLib.params import Parameters
from LungSegLib.phantom import chest_phantom
from LungSegLib.pipeline import segment_image
from LungSegLib.regions import measure_regions, patient_position

SPACING = (1.5, 2.0, 3.0)  # x, y, z mm
NZ, NY, NX = 30, 20, 16


def box_phantom(prone=False):
    """Two box lungs filling rows 0..19 (anterior->posterior) whose HU rises 50 HU per row: -950 ... 0.
    ``prone``: the same patient stored with image rows running posterior->anterior (as a prone scan)."""
    hu = np.full((NZ, NY, NX), -1000, np.int16)
    hu[:] = (-950 + 50 * np.arange(NY))[None, :, None]
    labels = np.zeros((NZ, NY, NX), np.uint8)
    labels[:, :, 1:7], labels[:, :, 9:15] = 1, 2
    direction = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    origin = (0.0, 0.0, 0.0)
    if prone:
        hu, labels = hu[:, ::-1].copy(), labels[:, ::-1].copy()
        direction = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
        origin = (0.0, (NY - 1) * SPACING[1], 0.0)  # row 0 is now the most posterior row
    return Image(hu, spacing=SPACING, origin=origin, direction=direction), labels


def _rows(regions, kind, structure):
    return [r for r in regions["rows"] if r["kind"] == kind and r["structure"] == structure]


@pytest.mark.parametrize("prone", [False, True])
def test_box_phantom_levels_and_thirds_have_exact_values(prone):
    image, labels = box_phantom(prone)
    regions = measure_regions(labels, image, density=1.0, levels=10)
    voxel_ml = image.voxel_volume_ml
    assert regions["position"] == ("prone" if prone else "supine")
    assert regions["dependent_side"] == ("ventral" if prone else "dorsal")
    assert regions["level_thickness_mm"] == pytest.approx((NY - 1) * SPACING[1] / 10)
    per_row = NZ * 6  # voxels of one lung in one row
    for level, row in enumerate(_rows(regions, "ventral_dorsal", "right")):
        j = np.array([2 * level, 2 * level + 1])  # 19 mm span / 10 levels: two 2 mm rows per level
        hu = -950 + 50 * j
        assert row["voxel_count"] == 2 * per_row
        assert row["mean_hu"] == pytest.approx(hu.mean())
        assert row["weight_g"] == pytest.approx(per_row * voxel_ml * ((hu + 1000) / 1000).sum())
        assert row["gas_volume_ml"] == pytest.approx(per_row * voxel_ml * (-hu / 1000).sum())
        assert row["from_mm"] == pytest.approx(level * 3.8) and row["to_mm"] == pytest.approx((level + 1) * 3.8)
    dorsal = _rows(regions, "ventral_dorsal", "both")[-1]  # rows 18, 19: -50 and 0 HU, non-aerated
    assert dorsal["non_aerated_volume_fraction"] == pytest.approx(1.0)
    ventral = _rows(regions, "ventral_dorsal", "both")[0]  # rows 0, 1: -950 and -900 HU
    assert ventral["over_aerated_volume_fraction"] == pytest.approx(0.5)
    assert ventral["normally_aerated_volume_fraction"] == pytest.approx(0.5)
    thirds = _rows(regions, "cranio_caudal", "left")
    assert [t["region"] for t in thirds] == ["upper", "middle", "lower"]
    assert [t["voxel_count"] for t in thirds] == [10 * NY * 6] * 3  # 30 slices: 10 per third
    profile = regions["profile"]["both"]
    assert profile["mean_hu"] == pytest.approx([-925 + 100 * k for k in range(10)])
    assert profile["gas_fraction"] == pytest.approx([(925 - 100 * k) / 1000 for k in range(10)])


def test_prone_storage_gives_the_same_regions_as_supine():
    supine = measure_regions(*box_phantom(False)[::-1], levels=7)
    prone = measure_regions(*box_phantom(True)[::-1], levels=7)
    for a, b in zip(supine["rows"], prone["rows"]):
        assert a["region"] == b["region"] and a["voxel_count"] == b["voxel_count"]
        assert a["weight_g"] == pytest.approx(b["weight_g"])


def test_ellipsoid_phantom_levels_match_analytic_slab_volumes():
    image, labels, volume_ml = chest_phantom(shape=(128, 160, 200), spacing=(1.0, 1.0, 1.25), lung_hu=-700.0)
    regions = measure_regions(labels, image, levels=10)
    a, b, c = 35.0, 45.0, 60.0  # the phantom's semi-axes (x, y, z) in mm

    def cap(y):  # volume (mL) of the ellipsoid between y = -b and y
        return math.pi * a * c * ((y + b) - (y ** 3 + b ** 3) / (3 * b * b)) / 1000.0

    extent = regions["level_thickness_mm"] * 10
    edges = [-extent / 2 + k * regions["level_thickness_mm"] for k in range(11)]
    edges[0], edges[-1] = -b, b
    for k, row in enumerate(_rows(regions, "ventral_dorsal", "right")):
        expected = cap(edges[k + 1]) - cap(edges[k])
        assert row["volume_ml"] == pytest.approx(expected, rel=0.04 if 0 < k < 9 else 0.15)
        assert row["weight_g"] == pytest.approx(row["volume_ml"] * 0.3, rel=1e-5)
        assert row["mean_hu"] == pytest.approx(-700.0)
    uppers = _rows(regions, "cranio_caudal", "right")  # thirds of the height: 2 c / 3 each
    z = [c - k * 2 * c / 3 for k in range(4)]
    for k, row in enumerate(uppers):
        expected = math.pi * a * b * ((z[k] - z[k + 1]) - (z[k] ** 3 - z[k + 1] ** 3) / (3 * c * c)) / 1000.0
        assert row["volume_ml"] == pytest.approx(expected, rel=0.04)


def _check_adds_up(regions, totals):
    for kind in ("ventral_dorsal", "cranio_caudal"):
        for structure in ("right", "left", "both"):
            rows = _rows(regions, kind, structure)
            total = totals[structure]
            assert sum(r["voxel_count"] for r in rows) == total["voxel_count"]
            for key in ("volume_ml", "weight_g", "gas_volume_ml"):
                assert sum(r[key] for r in rows) == pytest.approx(total[key], rel=1e-9, abs=1e-9)
            assert sum(r["mean_hu"] * r["voxel_count"] for r in rows) == \
                pytest.approx(total["mean_hu"] * total["voxel_count"], rel=1e-9)
            for band, _, _ in BANDS:
                assert sum(r[f"{band}_volume_fraction"] * r["volume_ml"] for r in rows) == \
                    pytest.approx(total[f"{band}_volume_fraction"] * total["volume_ml"], rel=1e-9, abs=1e-9)
                assert sum(r[f"{band}_weight_fraction"] * r["weight_g"] for r in rows) == \
                    pytest.approx(total[f"{band}_weight_fraction"] * total["weight_g"], rel=1e-9, abs=1e-9)
        for r, l, both in zip(*(_rows(regions, kind, s) for s in ("right", "left", "both"))):
            assert r["voxel_count"] + l["voxel_count"] == both["voxel_count"]
            assert r["weight_g"] + l["weight_g"] == pytest.approx(both["weight_g"])


def test_bundled_ct_regions_add_up_to_the_totals():
    result = segment_image(read_image(SAMPLES / "ct-64.nrrd"), Parameters(engine="hu", density=1.04),
                           options=CaseOptions(levels=10))
    regions = result.measurements["regions"]
    totals = result.measurements["structures"]
    assert totals["both"]["voxel_count"] > 10000
    assert len(regions["rows"]) == 3 * (10 + 3)
    _check_adds_up(regions, totals)
    hist = regions["histogram"]
    assert len(hist["edges_hu"]) == 111 and hist["edges_hu"][0] == -1000 and hist["edges_hu"][-1] == 100
    for structure in ("right", "left", "both"):
        inside = sum(hist[structure]) + hist["below_range_ml"][structure] + hist["above_range_ml"][structure]
        assert inside == pytest.approx(totals[structure]["volume_ml"])
    assert regions["position"] == "supine" and "direction matrix" in regions["position_source"]
    assert sum(regions["profile"]["both"]["weight_g"]) == pytest.approx(totals["both"]["weight_g"])
    assert len(regions["profile"]["depth_mm"]) == 10


def test_random_labels_add_up_for_any_level_count():
    rng = np.random.default_rng(3)
    hu = rng.integers(-1100, 300, size=(12, 14, 16)).astype(np.int16)
    labels = rng.integers(0, 3, size=hu.shape).astype(np.uint8)
    direction = np.linalg.qr(rng.normal(size=(3, 3)))[0]  # an arbitrary oblique orientation
    image = Image(hu, spacing=(0.7, 0.9, 2.5), origin=(10.0, -5.0, 3.0), direction=tuple(direction.ravel()))
    totals = measure_ct(labels, hu, image.voxel_volume_ml, 1.05)["structures"]
    for levels in (1, 3, 17):
        _check_adds_up(measure_regions(labels, image, 1.05, levels), totals)


def test_no_lung_gives_zero_regions_not_nan():
    image, labels = box_phantom()
    regions = measure_regions(np.zeros_like(labels), image)
    assert all(r["voxel_count"] == 0 and r["mean_hu"] == 0 for r in regions["rows"])
    assert sum(regions["histogram"]["both"]) == 0


def test_position_from_dicom_option_and_nifti():
    image, _ = box_phantom()
    assert patient_position(image, "prone") == ("prone", "given with --position")
    image.meta["patient_position"] = "FFP"
    assert patient_position(image)[0] == "prone" and "FFP" in patient_position(image)[1]
    image.meta.update(patient_position="", source="/data/ct.nii.gz")
    assert patient_position(image)[0] == "supine" and "assumed" in patient_position(image)[1]
    image.meta["source"] = "ct.nrrd"
    image.direction = (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # image rows run to the patient's left
    assert patient_position(image)[0] == "decubitus"
    image.direction = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0)  # a coronal stack: rows run head->foot
    assert patient_position(image) == ("supine", patient_position(image)[1]) and "assumed" in patient_position(image)[1]


def test_bad_level_count_is_a_clear_error():
    with pytest.raises(LungSegError, match="levels must be between 1 and 100"):
        CaseOptions(levels=0).validate()
    with pytest.raises(LungSegError, match="position must be one of auto, supine, prone"):
        CaseOptions(position="sitting").validate()


def test_float_hu_path_equals_the_integer_path_and_adds_up():
    rng = np.random.default_rng(5)
    hu = rng.integers(-1100, 300, size=(10, 12, 14)).astype(np.int16)
    labels = rng.integers(0, 3, size=hu.shape).astype(np.uint8)
    image = Image(hu, spacing=(0.8, 0.8, 2.0))
    as_int = measure_regions(labels, image, levels=4)
    as_float = measure_regions(labels, image.with_array(hu.astype(np.float32)), levels=4)
    for a, b in zip(as_int["rows"], as_float["rows"]):
        assert a["voxel_count"] == b["voxel_count"]
        for key in ("weight_g", "gas_volume_ml", "mean_hu", "non_aerated_weight_fraction"):
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12)
    assert as_int["histogram"]["both"] == pytest.approx(as_float["histogram"]["both"])
    fractional = image.with_array(hu.astype(np.float32) + 0.37)  # not integers: voxel by voxel
    totals = measure_ct(labels, fractional.array, fractional.voxel_volume_ml, 1.0)["structures"]
    _check_adds_up(measure_regions(labels, fractional, 1.0, 6), totals)
