"""Radiograph opacity simulator (training augmentation and stress test) and image/mask pairing by stem."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from LungSegLib import data as lsdata
from LungSegLib.errors import LungSegError
from LungSegLib.opacity import (FAMILIES, HELD_OUT, TRAINED, RandOpacityd, add_opacity, opacity_field,
                                paint_opacity, portable_look)


def film(seed=0):
    """A 128x128 'radiograph' in model units: bright body, two dark lungs with rib-like stripes."""
    h = w = 128
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w), 0.75, np.float32)
    right = ((yy - 64) / 40) ** 2 + ((xx - 38) / 20) ** 2 <= 1
    left = ((yy - 64) / 40) ** 2 + ((xx - 90) / 20) ** 2 <= 1
    img[right | left] = 0.25 + 0.08 * np.sin(yy[right | left] / 3.0)
    img += np.random.default_rng(seed).normal(0, 0.01, img.shape).astype(np.float32)
    labels = np.zeros((h, w), np.uint8)
    labels[right], labels[left] = 1, 2
    return np.clip(img, 0, 1), labels


@pytest.mark.parametrize("family", FAMILIES)
def test_opacity_inside_lung_brightens_and_is_deterministic(family):
    img, labels = film()
    lungs = labels > 0
    before = img.copy()
    f1 = opacity_field(family, lungs, np.random.default_rng(7))
    f2 = opacity_field(family, lungs, np.random.default_rng(7))
    assert np.array_equal(f1, f2)
    assert f1.max() > 0.2 and (f1[~lungs] == 0).all()
    out = paint_opacity(img, f1, np.random.default_rng(1))
    assert np.array_equal(img, before)                      # input untouched
    assert np.array_equal(out[~lungs], img[~lungs])         # nothing changes outside the lung
    strong = f1 > 0.5
    if strong.any():                                        # opaque lung moves toward soft tissue
        assert out[strong].mean() > img[strong].mean() + 0.15


def test_family_shapes():
    img, labels = film()
    lungs = labels > 0
    yy = np.mgrid[0:128, 0:128][0]
    basal = opacity_field("basal", lungs, np.random.default_rng(3)) > 0.5
    assert yy[basal].mean() > yy[lungs].mean() + 5          # lower zone
    lobar = opacity_field("lobar", lungs, np.random.default_rng(3)) > 0.5
    assert len({int(v) for v in np.unique(labels[lobar])}) == 1  # one lung only
    for seed in range(5):  # one lung, white over at least most of its height
        white = opacity_field("hemithorax", lungs, np.random.default_rng(seed)) > 0.5
        sides = {int(v) for v in np.unique(labels[white])}
        assert len(sides) == 1
        side = labels == sides.pop()
        assert white.sum() > 0.6 * side.sum()
    haze = opacity_field("haze", lungs, np.random.default_rng(3))
    assert 0.1 < haze[lungs].mean() < 0.8                   # diffuse, partial
    assert set(HELD_OUT).isdisjoint(TRAINED) and HELD_OUT


def test_rand_opacityd_keeps_label_and_skips_held_out():
    import torch

    img, labels = film()
    t = RandOpacityd(("image",), "label", prob=1.0, families=TRAINED, portable_prob=0.0)
    t.set_random_state(seed=5)
    d = {"image": torch.from_numpy(img[None].copy()), "label": torch.from_numpy(labels[None].astype(np.float32))}
    out = t(d)
    assert torch.equal(out["label"], d["label"])
    assert not torch.equal(out["image"], d["image"])
    rng = np.random.default_rng(0)
    seen = {add_opacity(img, labels > 0, rng)[1] for _ in range(40)}
    assert seen == set(TRAINED)                              # held-out family never drawn by default


def test_portable_look_lowers_contrast():
    img, _ = film()
    out = portable_look(img, np.random.default_rng(2))
    assert np.percentile(out, 95) - np.percentile(out, 5) < np.percentile(img, 95) - np.percentile(img, 5)
    assert out.min() >= 0 and out.max() <= 1


def test_find_pairs_matches_jpg_images_to_png_masks(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    img, labels = film()
    PILImage.fromarray((img * 255).astype(np.uint8)).save(tmp_path / "images" / "case_a.jpg", quality=90)
    PILImage.fromarray(((labels > 0) * 255).astype(np.uint8)).save(tmp_path / "masks" / "case_a.png")
    PILImage.fromarray((img * 255).astype(np.uint8)).save(tmp_path / "images" / "case_b.png")
    PILImage.fromarray(((labels > 0) * 255).astype(np.uint8)).save(tmp_path / "masks" / "case_b.png")
    PILImage.fromarray((img * 255).astype(np.uint8)).save(tmp_path / "images" / "no_mask.jpg")
    pairs = lsdata.find_pairs([tmp_path])
    assert [(c, i.name, m.name) for c, i, m in pairs] == [("case_a", "case_a.jpg", "case_a.png"),
                                                          ("case_b", "case_b.png", "case_b.png")]
    image, sided = lsdata.read_pair(pairs[0][1], pairs[0][2], radiograph=True)
    assert set(np.unique(sided.array)) == {0, 1, 2}
    PILImage.fromarray(((labels > 0) * 255).astype(np.uint8)).save(tmp_path / "masks" / "case_a.tif")
    with pytest.raises(LungSegError, match="share the stem"):
        lsdata.find_pairs([tmp_path])


def test_evaluate_reports_opacity_recall_and_groups(tmp_path):
    """A COVID-QU-Ex-like folder (jpg images, png masks, infection/): opacity recall and per-group numbers."""
    from LungSegLib import evaluate

    for sub in ("images", "masks", "infection"):
        (tmp_path / sub).mkdir()
    img, labels = film()
    PILImage.fromarray((img * 255).astype(np.uint8)).save(tmp_path / "images" / "c1.jpg", quality=95)
    PILImage.fromarray(((labels > 0) * 255).astype(np.uint8)).save(tmp_path / "masks" / "c1.png")
    opaque = np.zeros_like(labels, bool)
    opaque[60:70, 30:45] = True                              # inside the right lung
    PILImage.fromarray((opaque * 255).astype(np.uint8)).save(tmp_path / "infection" / "c1.png")
    got = evaluate.opacity_mask(tmp_path / "images" / "c1.jpg")
    assert got is not None and got.sum() == opaque.sum()
    rows = [{"case": "c1", "opacity_recall": 0.5, "metrics": evaluate.evaluate_labels(labels, labels, (1, 1), False, 1)}]
    groups = evaluate.summarize_groups(rows, {"c1": {"dataset": "set", "group": "COVID-19"}})
    assert set(groups) == {"set", "set/COVID-19"}
    assert groups["set/COVID-19"]["opacity_recall_mean"] == 0.5
    assert groups["set"]["both_dice_mean"] == pytest.approx(1.0)
