"""CT pathology simulator (LungSegLib.pathology): every family paints only inside the lung, hits the
requested dense fraction, is deterministic, leaves inputs alone and has the shape it claims; the MONAI
transform keeps labels; acquisition variation never cuts the lungs. Synthetic phantom + one LCTSC CT."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage

from conftest import shared_path
from LungSegLib import pathology as P
from LungSegLib.errors import LungSegError
from LungSegLib.phantom import chest_phantom

SPACING = (3.5, 2.0, 2.5)  # (z, y, x) mm


@pytest.fixture(scope="module")
def phantom():
    """Ellipsoid lungs (-850 HU, 20 HU noise) in a body, with vessels (+40 HU) and airways (-1000 HU)."""
    image, labels, _ = chest_phantom(shape=(40, 64, 80), spacing=SPACING[::-1], lung_hu=-850, noise_hu=20)
    hu = image.array.astype(np.int16)
    z, y, x = np.ogrid[:40, :64, :80]
    vessels = np.zeros(hu.shape, bool)
    airways = np.zeros(hu.shape, bool)
    for cx in (18, 28, 52, 62):                       # vertical vessels and airways in both lungs
        vessels |= (y - 26) ** 2 + (x - cx) ** 2 <= 2
        airways |= (y - 38) ** 2 + (x - cx - 2) ** 2 <= 2
    vessels |= ((z - 14) ** 2 + (y - 32) ** 2 <= 2)      # a horizontal vessel across both lungs
    airways |= ((z - 26) ** 2 + (y - 44) ** 2 <= 2)
    lungs = labels > 0
    hu[vessels & lungs] = 40
    hu[airways & lungs] = -1000
    return hu, labels, airways & lungs


def _run(phantom, family, fraction, seed=0):
    hu, labels, _ = phantom
    return P.simulate(family, hu, labels, fraction, np.random.default_rng(seed), SPACING)


def test_family_lists_hold_families_out():
    assert set(P.TRAINED) | set(P.HELD_OUT) == set(P.FAMILIES) and len(P.HELD_OUT) >= 2
    assert not set(P.TRAINED) & set(P.HELD_OUT)
    assert "held out of training: perihilar, mixed" in P.describe()


@pytest.mark.parametrize("family", P.FAMILIES)
@pytest.mark.parametrize("fraction", (0.10, 0.25, 0.40))
def test_family_paints_inside_the_lung_at_the_requested_fraction(phantom, family, fraction):
    hu, labels, _ = phantom
    before_hu, before_labels = hu.copy(), labels.copy()
    new, region = _run(phantom, family, fraction)
    lungs = labels > 0
    assert new.dtype == np.float32 and region.dtype == bool and new.shape == hu.shape
    assert np.array_equal(hu, before_hu) and np.array_equal(labels, before_labels)  # inputs untouched
    assert not (region & ~lungs).any()
    assert abs(region.sum() / lungs.sum() - fraction) <= 0.02
    assert np.array_equal(new[~region], hu[~region].astype(np.float32))  # nothing changes outside
    assert (new[region] > hu[region] + 50).mean() > 0.8       # the region really became denser
    again, region2 = _run(phantom, family, fraction)
    assert np.array_equal(again, new) and np.array_equal(region2, region)
    other, region3 = _run(phantom, family, fraction, seed=1)
    assert not np.array_equal(region3, region)


@pytest.mark.parametrize("family", P.FAMILIES)
def test_family_works_on_a_single_slice_and_on_a_bool_mask(phantom, family):
    hu, labels, _ = phantom
    slab = (hu[20:21], labels[20:21] > 0)
    new, region = P.simulate(family, *slab, 0.3, np.random.default_rng(0), SPACING)
    assert new.shape == (1, 64, 80) and not (region & ~slab[1]).any()
    assert abs(region.sum() / slab[1].sum() - 0.3) <= 0.02


def _edt_mean(lungs, region):
    depth = ndimage.distance_transform_edt(lungs, sampling=SPACING)
    return depth[region].mean(), depth[lungs].mean()


def test_dependent_is_posterior_with_an_undulating_border(phantom):
    lungs = phantom[1] > 0
    _, region = _run(phantom, "dependent", 0.25)
    y = np.nonzero(region)[1]
    assert y.mean() > np.nonzero(lungs)[1].mean() + 8
    top = [np.nonzero(region[z].any(axis=1))[0].min() for z in range(40) if region[z].any()]
    assert np.ptp(top) >= 2  # the upper border is not one flat plane


def test_subpleural_hugs_the_pleura_and_spares_the_anterior_lung(phantom):
    lungs = phantom[1] > 0
    _, region = _run(phantom, "subpleural", 0.25)
    inside, average = _edt_mean(lungs, region)
    assert inside < 0.6 * average
    y_lung = np.nonzero(lungs)[1]
    assert np.nonzero(region)[1].mean() > y_lung.mean()  # posterior/lateral, not all around


def test_patchy_is_several_peripheral_patches(phantom):
    lungs = phantom[1] > 0
    _, region = _run(phantom, "patchy", 0.10)
    _, n = ndimage.label(region)
    assert n >= 3
    inside, average = _edt_mean(lungs, region)
    assert inside < average


def test_scattered_is_many_patches_with_no_zonal_preference(phantom):
    lungs = phantom[1] > 0
    ratios = []
    for seed in range(5):
        _, region = _run(phantom, "scattered", 0.25, seed)
        assert ndimage.label(region)[1] >= 5
        inside, average = _edt_mean(lungs, region)
        ratios.append(inside / average)
    assert 0.85 < np.mean(ratios) < 1.15  # neither peripheral (patchy) nor central (perihilar)


def test_lobar_is_few_wedges_reaching_the_pleura(phantom):
    lungs = phantom[1] > 0
    _, region = _run(phantom, "lobar", 0.25)
    lab, n = ndimage.label(region)
    sizes = np.bincount(lab.ravel())[1:]
    assert (sizes > 0.05 * region.sum()).sum() <= 2
    pleura = lungs & ~ndimage.binary_erosion(lungs)
    assert (region & pleura).sum() > 0.05 * region.sum()


def test_ground_glass_is_partial_and_keeps_the_vessels(phantom):
    hu, labels, _ = phantom
    new, region = _run(phantom, "ground_glass", 0.40)
    assert -750 <= np.median(new[region]) <= -250
    before, after = hu[region].astype(float), new[region].astype(float)
    assert after.std() > 20 and np.corrcoef(before, after)[0, 1] > 0.8  # texture kept, not flattened
    assert new[region].max() > np.median(new[region]) + 300  # vessels still stand out


def test_perihilar_is_central(phantom):
    lungs = phantom[1] > 0
    _, region = _run(phantom, "perihilar", 0.25)
    _, ly, lx = np.nonzero(lungs)
    centre = np.array([ly.mean(), (lx.min() + lx.max()) / 2])

    def mean_distance(mask):
        _, y, x = np.nonzero(mask)
        return np.hypot((y - centre[0]) * SPACING[1], (x - centre[1]) * SPACING[2]).mean()

    assert mean_distance(region) < 0.85 * mean_distance(lungs)


def test_mixed_has_consolidation_ground_glass_and_dark_air_bronchograms(phantom):
    hu, labels, airways = phantom
    new, region = _run(phantom, "mixed", 0.40)
    assert (new[region] > -150).mean() > 0.2 and ((new[region] > -750) & (new[region] < -250)).mean() > 0.2
    air = region & airways
    assert air.sum() > 20
    dense_around = ndimage.binary_dilation(air, iterations=2) & region & ~airways
    assert (new[air] < -900).mean() > 0.3  # air bronchograms stay dark ...
    assert (new[dense_around] > -150).sum() > 0  # ... inside consolidation
    parenchyma = region & ~airways & (hu > -950)
    assert (new[parenchyma] < -900).mean() < 0.01  # normal lung is not left dark


def test_bad_inputs_are_clear_errors(phantom):
    hu, labels, _ = phantom
    rng = np.random.default_rng(0)
    with pytest.raises(LungSegError, match="unknown pathology family"):
        P.simulate("nodule", hu, labels, 0.2, rng)
    with pytest.raises(LungSegError, match="same"):
        P.simulate("patchy", hu, labels[:, :10], 0.2, rng)
    with pytest.raises(LungSegError, match="between 0 and 1"):
        P.simulate("patchy", hu, labels, 25, rng)
    with pytest.raises(LungSegError, match="spacing"):
        P.simulate("patchy", hu, labels, 0.2, rng, spacing=(1, 1))
    new, region = P.simulate("patchy", hu, np.zeros_like(labels), 0.2, rng)
    assert not region.any() and np.array_equal(new, hu)


def test_acquisition_varies_the_scan_but_never_cuts_the_lungs(phantom):
    hu, labels, _ = phantom
    lungs = labels > 0
    notes, seen = [], set()
    spacing = (1.0, 2.0, 2.5)  # thin slices, so 1-5 mm slab averaging applies
    for seed in range(25):
        new, note = P.acquisition(hu, np.random.default_rng(seed), spacing, keep=lungs)
        assert new.shape == hu.shape and new.dtype == np.float32
        assert not (new[lungs] <= P.AIR_HU).all()
        assert note != "none"
        notes.append(note)
        seen |= {w for w in ("table", "arms", "field of view", "slices", "kernel", "noise") if w in note}
        if "field of view" in note and "noise" not in note and "kernel" not in note and "slices" not in note:
            assert (new[lungs] > P.AIR_HU).all()
    assert seen >= {"table", "field of view", "slices", "kernel", "noise"}, notes
    new, note = P.acquisition(hu, np.random.default_rng(3), SPACING)
    assert np.array_equal(P.acquisition(hu, np.random.default_rng(3), SPACING)[0], new)


@pytest.mark.parametrize("effect", ["table", "arms"])
def test_table_and_arms_are_painted_outside_the_body_only(phantom, effect):
    hu = np.pad(phantom[0], ((0, 0), (0, 20), (40, 40)), constant_values=-1000)  # room beside and below
    body = hu > -500
    _, by, bx = np.nonzero(body)
    for seed in range(60):
        new, note = P.acquisition(hu, np.random.default_rng(seed), SPACING)
        if note.startswith(effect) and ";" not in note:
            changed = new != hu
            assert changed.any() and not (changed & body).any()
            _, y, x = np.nonzero(changed)
            if effect == "table":
                assert y.min() > by.mean()  # under the patient (posterior)
            else:
                assert ((x < bx.min()) | (x > bx.max())).all() and new[changed].max() > 300  # humerus
            return
    pytest.fail(f"no {effect}-only acquisition in 60 seeds")


def test_no_second_table_under_a_scan_that_has_one(phantom):
    hu = np.pad(phantom[0], ((0, 0), (0, 20), (0, 0)), constant_values=-1000)
    hu[:, 70:73, :] = 300  # a table below an air gap
    notes = [P.acquisition(hu, np.random.default_rng(seed), SPACING)[1] for seed in range(30)]
    assert not any("table" in n for n in notes), notes


@pytest.mark.parametrize("shape", [(1, 40, 64, 80), (1, 64, 80)])
def test_transform_paints_model_units_and_keeps_labels(phantom, shape):
    import torch

    hu, labels, _ = phantom
    lo, hi = -1024, 600
    image = np.clip((hu.astype(np.float32) - lo) / (hi - lo), 0, 1)
    lab = labels.astype(np.float32)
    if len(shape) == 3:
        image, lab = image[20], lab[20]
    item = {"image": torch.as_tensor(image[None]), "label": torch.as_tensor(lab[None])}
    t = P.RandPathologyd(("image",), "label", prob=1.0, acquisition_prob=0.0)
    t.set_random_state(7)
    out = t(item)
    assert out["image"].shape == shape and out["image"].dtype == torch.float32
    assert torch.equal(out["label"], item["label"])
    changed = (out["image"] != item["image"]).numpy()[0]
    assert changed.any() and not (changed & (lab == 0)).any()
    assert 0.0 <= float(out["image"].min()) and float(out["image"].max()) <= 1.0
    t.set_random_state(7)
    assert torch.equal(t(item)["image"], out["image"])
    from monai.data import MetaTensor

    meta = {"image": MetaTensor(item["image"], affine=torch.eye(4) * 2), "label": item["label"]}
    t.set_random_state(7)
    painted = t(meta)["image"]
    assert isinstance(painted, MetaTensor) and torch.equal(painted.affine, meta["image"].affine)
    assert torch.equal(painted.as_tensor(), out["image"])
    with pytest.raises(LungSegError, match="unknown pathology families"):
        P.RandPathologyd(("image",), "label", families=("mixed", "tumour"))


def test_transform_speed_on_a_training_crop():
    """Budget: < 60 ms per call on a 96^3 crop (2-core CPU); asserted with slack for a loaded machine."""
    import torch

    _, labels, _ = chest_phantom(shape=(96, 96, 96), spacing=(2.5, 2.5, 2.5), semi_axes_mm=(45, 60, 100))
    image = torch.full((1, 96, 96, 96), 0.1)
    t = P.RandPathologyd(("image",), "label", prob=1.0, acquisition_prob=0.3)
    t.set_random_state(0)
    item = {"image": image, "label": torch.as_tensor(labels[None].astype(np.float32))}
    times = []
    for _ in range(8):
        t0 = time.perf_counter()
        t(item)
        times.append(time.perf_counter() - t0)
    assert np.median(times) < 0.25, times


def test_every_family_on_a_real_lctsc_patient():
    """lctsc002 (validation patient) at 2.5 mm: exact fractions, inside the expert mask, dependent is dorsal."""
    from LungSegLib import preprocess as pp
    from LungSegLib.data import read_pair
    import SimpleITK as sitk

    folder = shared_path("ct", "lctsc-cambridge-dis-12")
    image, labels = read_pair(folder / "lctsc002_ct.nii.gz", folder / "lctsc002_lungs.nii.gz", radiograph=False)
    low = sitk.GetArrayFromImage(pp.resample_volume(image, (2.5, 2.5, 2.5)))
    lab = sitk.GetArrayFromImage(pp.resample_volume(labels, (2.5, 2.5, 2.5), "nearest", default=0))
    lungs = lab > 0
    for k, family in enumerate(P.FAMILIES):
        new, region = P.simulate(family, low, lab, 0.25, np.random.default_rng(k), (2.5, 2.5, 2.5))
        assert not (region & ~lungs).any() and abs(region.sum() / lungs.sum() - 0.25) <= 0.02, family
        assert np.median(new[region]) > np.median(low[lungs]) + 200, family
        if family == "dependent":
            assert np.nonzero(region)[1].mean() > np.nonzero(lungs)[1].mean() + 10
