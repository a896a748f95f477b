"""Every engine runs end to end: the HU engine on real CTs against reference masks, the network
engines with randomly initialised weights of each architecture (shapes, labels, geometry only)."""

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import SAMPLES, dice, shared_path
from LungSegLib.errors import LungSegError
from LungSegLib.io import read_image
from LungSegLib.params import Parameters
from LungSegLib.pipeline import run_case, segment_image
from LungSegLib.validate import check_image


def _mask_on(image_path, mask_path):
    img, mask = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(mask_path))
    out = sitk.Resample(mask, img, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(out) > 0


def test_hu_engine_on_cip_ct_matches_its_lung_mask():
    result = run_case(SAMPLES / "ct-64.nrrd", Parameters(engine="hu"))
    truth = _mask_on(SAMPLES / "ct-64.nrrd", SAMPLES / "masks" / "ct-64_wholeLung.nrrd")
    assert dice(result.labels.array, truth) >= 0.95
    assert set(np.unique(result.labels.array)) == {0, 1, 2}
    assert not result.qc["flags"] or result.qc["flags"] == ["mask_touches_border_possibly_truncated"]


@pytest.mark.parametrize("case", ["lctsc000", "lctsc005"])
def test_hu_engine_on_lctsc_cases(case, record_property):
    folder = shared_path("ct", "lctsc-cambridge-dis-12")
    result = run_case(folder / f"{case}_ct.nii.gz", Parameters(engine="hu"))
    d = dice(result.labels.array, _mask_on(folder / f"{case}_ct.nii.gz", folder / f"{case}_lungs.nii.gz"))
    record_property("dice", d)
    print(f"{case}: HU engine Dice {d:.4f}")
    assert d >= 0.90


@pytest.mark.parametrize("arch", ["unet", "resunet"])
@pytest.mark.parametrize("engine", ["ct2d", "ct3d"])
def test_ct_network_engines_run_with_random_weights(engine, arch, random_weights):
    image = read_image(SAMPLES / "ct-64.nrrd")
    result = segment_image(image, Parameters(engine=engine, arch=arch, weights=str(random_weights(engine, arch))))
    assert result.labels.array.shape == image.array.shape
    assert result.labels.array.dtype == np.uint8
    assert set(np.unique(result.labels.array)) <= {0, 1, 2}
    assert result.labels.spacing == image.spacing and result.labels.origin == image.origin
    assert result.model["version"] == "user weights" and result.model["arch"] == arch


@pytest.mark.parametrize("arch", ["unet", "resunet"])
def test_cxr_engine_runs_with_random_weights_and_keeps_image_size(arch, random_weights):
    image = read_image(SAMPLES / "montgomery_MCUCXR_0001_0.png")
    result = segment_image(image, Parameters(engine="auto", arch=arch, weights=str(random_weights("cxr", arch))))
    assert result.engine == "cxr"
    assert result.labels.array.shape == image.array.shape
    assert set(np.unique(result.labels.array)) <= {0, 1, 2}
    assert "area_cm2" in result.measurements["structures"]["both"]


def test_weights_of_the_wrong_architecture_are_a_clear_error(random_weights):
    image = read_image(SAMPLES / "ct-64.nrrd")
    with pytest.raises(LungSegError, match="does not fit model ct2d_resunet"):
        segment_image(image, Parameters(engine="ct2d", arch="resunet", weights=str(random_weights("ct2d", "unet"))))
    with pytest.raises(LungSegError, match="not found"):
        segment_image(image, Parameters(engine="ct2d", weights="/nonexistent/weights.pt"))


def test_progress_callback_reports_and_can_cancel(random_weights):
    from LungSegLib.errors import CancelledError

    image = read_image(SAMPLES / "ct-64.nrrd")
    seen = []
    params = Parameters(engine="ct2d", weights=str(random_weights("ct2d")), batch_size=16)
    segment_image(image, params, progress=lambda f, m: seen.append((f, m)) or True)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(seen) >= 5
    with pytest.raises(CancelledError):
        segment_image(image, params, progress=lambda f, m: f < 0.3)


def test_auto_engine_picks_the_best_validated_shipped_ct_model_that_suits_the_pixel_size():
    from dataclasses import replace

    from LungSegLib.networks import selection_dice, shipped_cards, suits_spacing
    from LungSegLib.pipeline import choose_engine

    ct_cards = [c for c in shipped_cards() if c["task"] in ("ct2d", "ct3d", "ct2d+ct3d") and c.get("default")]
    coarse = read_image(SAMPLES / "ct-64.nrrd")  # 4.2 mm pixels
    fine = replace(coarse, spacing=(0.8, 0.8, coarse.spacing[2]))

    def expected(inplane):
        suited = [c for c in ct_cards if suits_spacing(c, inplane)]
        return max(suited, key=selection_dice)["task"] if suited else "hu"

    assert choose_engine(fine, Parameters()) == expected(0.8)
    assert choose_engine(coarse, Parameters()) == expected(max(coarse.spacing[:2]))
    assert choose_engine(read_image(SAMPLES / "montgomery_MCUCXR_0001_0.png"), Parameters()) == "cxr"


def test_selection_dice_is_the_worst_of_validation_external_checks_and_pathology_families():
    from LungSegLib.networks import selection_dice

    card = {"metrics": {"validation": {"dice_mean": 0.98}}}
    assert selection_dice(card) == 0.98
    card["metrics"]["external_checks"] = [{"dice": 0.93}, {"dice": 0.97}, {"dice": None}]  # None: not run on it
    assert selection_dice(card) == 0.93
    card["metrics"]["robustness"] = {"dice_worst_family_25": 0.91}   # a dense-lung family it loses
    assert selection_dice(card) == 0.91
    card["metrics"]["robustness"] = {"dice_worst_family_25": 0.95}
    assert selection_dice(card) == 0.93


def test_ct2d_on_coarser_pixels_than_it_was_trained_for_warns_and_auto_avoids_it(random_weights):
    from LungSegLib.networks import find_card
    from LungSegLib.pipeline import choose_engine

    limit = find_card("ct2d")["input"].get("max_inplane_spacing_mm")
    assert limit is not None and limit < 4.0  # the shipped card declares its training pixel size
    image = read_image(SAMPLES / "ct-64.nrrd")

    assert choose_engine(image, Parameters()) != "ct2d"
    warnings = check_image(image, "ct2d", Parameters().validate())
    assert any("coarser than" in w and "ct3d" in w for w in warnings)
    assert not any("coarser than" in w for w in check_image(image, "ct3d", Parameters().validate()))
    ensemble = find_card("ct2d+ct3d")  # the pair's warning names the pair and its slice member, not ct2d alone
    pair = [w for w in check_image(image, "ct2d+ct3d", Parameters().validate()) if "coarser than" in w]
    assert len(pair) == 1 and ensemble["name"] in pair[0] and ensemble["members"]["ct2d"] in pair[0]
    own = Parameters(engine="ct2d", weights=str(random_weights("ct2d"))).validate()
    assert not any("coarser than" in w for w in check_image(image, "ct2d", own))


def test_mirror_average_is_left_right_equivariant_with_sides_swapped(random_weights):
    """Mirroring the input must mirror the output and swap right/left: the property a sided mirror
    average needs (a plain flip average without the channel swap fails it)."""
    import torch

    from LungSegLib.engines import mirrored_probabilities
    from LungSegLib.networks import build_network, default_card

    torch.manual_seed(0)
    model = build_network(default_card("ct2d", "unet")).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        direct = mirrored_probabilities(model, x)
        of_mirror = mirrored_probabilities(model, torch.flip(x, dims=[-1]))
    assert torch.allclose(of_mirror, torch.flip(direct, dims=[-1])[:, [0, 2, 1]], atol=1e-5)
    assert torch.allclose(direct.sum(dim=1), torch.ones(2, 64, 64), atol=1e-5)
