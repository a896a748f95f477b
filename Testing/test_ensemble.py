"""The ct2d+ct3d engine (mean of both models' probabilities) and user weights with their own card."""

import json
import shutil

import numpy as np
import pytest

from conftest import SAMPLES, dice, shared_path
from LungSegLib import preprocess as pp
from LungSegLib.errors import LungSegError
from LungSegLib.io import read_image
from LungSegLib.params import Parameters
from LungSegLib.pipeline import segment_image


def test_ensemble_on_a_validation_patient_is_at_least_as_good_as_the_weaker_model():
    from LungSegLib.data import read_pair

    folder = shared_path("ct", "lctsc-cambridge-dis-12")
    image, labels = read_pair(folder / "lctsc002_ct.nii.gz", folder / "lctsc002_lungs.nii.gz", radiograph=False)
    truth = labels.array > 0
    scores = {e: dice(segment_image(image, Parameters(engine=e, device="cpu")).labels.array, truth)
              for e in ("ct2d", "ct3d", "ct2d+ct3d")}
    print(scores)
    assert scores["ct2d+ct3d"] >= 0.97
    assert scores["ct2d+ct3d"] >= min(scores["ct2d"], scores["ct3d"]) - 0.002


def test_ensemble_refuses_a_single_weights_file(random_weights):
    with pytest.raises(LungSegError, match="cannot serve the ct2d\\+ct3d ensemble"):
        Parameters(engine="ct2d+ct3d", weights=str(random_weights("ct2d"))).validate()


def test_slice_probabilities_are_background_outside_the_body_box_and_argmax_gives_the_labels():
    rng = np.random.default_rng(0)
    prob = rng.random((3, 3, 16, 16)).astype(np.float32)
    prob /= prob.sum(axis=1, keepdims=True)
    box = pp.SliceBox(4, 20, 2, 30, 28)
    full = pp.slice_probabilities(prob, box, (3, 40, 40))
    assert full.shape == (3, 3, 40, 40)
    assert np.all(full[:, 0, :4] == 1.0) and np.all(full[:, 1:, :, 30:] == 0.0)
    # inside the box the model's maps land where the model saw them: class 2 on the model grid's left half,
    # class 1 on its right half -> the same halves of the box (away from the seam)
    halves = np.zeros((1, 3, 16, 16), np.float32)
    halves[:, 2, :, :8], halves[:, 1, :, 8:] = 1.0, 1.0
    labels = np.argmax(pp.slice_probabilities(halves, box, (1, 40, 40)), axis=1)[0]
    assert np.all(labels[box.y0:box.y1, box.x0:box.x0 + 8] == 2) and np.all(labels[box.y0:box.y1, box.x1 - 8:box.x1] == 1)
    assert np.all(labels[:box.y0] == 0) and np.all(labels[:, box.x1:] == 0)


def test_user_weights_run_with_the_card_written_beside_them(random_weights, tmp_path):
    from LungSegLib.networks import default_card

    weights = tmp_path / "my_ct2d.pt"
    shutil.copy(random_weights("ct2d"), weights)
    card = dict(default_card("ct2d", "unet"), name="my_ct2d")
    card["input"]["mirror_average"] = True
    weights.with_suffix(".json").write_text(json.dumps(card))
    image = read_image(SAMPLES / "ct-64.nrrd")
    result = segment_image(image, Parameters(engine="ct2d", weights=str(weights), device="cpu"))
    assert result.model["name"] == "my_ct2d" and result.model["version"] == "user weights"
    weights.with_suffix(".json").write_text(json.dumps(dict(card, task="ct3d")))
    with pytest.raises(LungSegError, match="is not a ct2d card"):
        segment_image(image, Parameters(engine="ct2d", weights=str(weights), device="cpu"))


def test_the_shipped_ensemble_card_names_its_members_and_results_name_the_ensemble():
    from dataclasses import replace

    from LungSegLib.networks import card_named, find_card

    ensemble = find_card("ct2d+ct3d")
    members = {task: card_named(name) for task, name in ensemble["members"].items()}
    assert {task: card["task"] for task, card in members.items()} == {"ct2d": "ct2d", "ct3d": "ct3d"}
    # auto may only pick the pair where its slice member suits the pixels
    assert ensemble["input"]["max_inplane_spacing_mm"] == members["ct2d"]["input"]["max_inplane_spacing_mm"]
    for card in members.values():  # a member that is not the task's default is never offered alone
        assert card.get("default") or card.get("ensemble_member_of") == ensemble["name"]
        assert find_card(card["task"])["name"] == card["name"] or not card.get("default")
    coarse = read_image(SAMPLES / "ct-64.nrrd")
    image = replace(coarse, spacing=(0.8, 0.8, coarse.spacing[2]))
    result = segment_image(image, Parameters(engine="ct2d+ct3d", device="cpu"))
    assert result.model["name"] == ensemble["name"] and result.model["task"] == "ct2d+ct3d"
    assert all(card["name"] in result.model["version"] for card in members.values())


def test_shipped_ct_cards_carry_the_committed_robustness_report():
    """The numbers `auto` ranks by (each card's metrics.robustness) are the committed report of the shipped
    engines, recomputed from its per-case rows: a retrained model cannot ship with a stale block."""
    import json
    import sys

    from conftest import REPO
    from LungSegLib.networks import card_named
    from LungSegLib.pathology import HELD_OUT

    sys.path.insert(0, str(REPO / "bench"))
    from dense_lung_stress import card_summary, summarise

    report = json.loads((REPO / "bench" / "results" / "robustness_ct2d_ct3d.json").read_text())
    recomputed = summarise(report["cases"], report["engines"], report["families"], report["fractions"])
    for engine, name in (("ct2d+ct3d", "ct2d_ct3d"), ("ct3d", "ct3d_unet")):
        assert recomputed[engine] == report["summary"][engine]
        block = card_named(name)["metrics"]["robustness"]
        expected = card_summary(report, engine)
        for key in ("dice_worst_family_25", "worst_family_25", "at_25", "clean"):
            assert block[key] == expected[key], (name, key)
        assert {f for f, v in block["at_25"].items() if v["held_out"]} == set(HELD_OUT)
