"""Shipped models, training, evaluation and the dense-lung augmentation (CPU, small and fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CIP = SHARED / "ct" / "cip-copdgene-ct64"
MONTGOMERY = SHARED / "cxr" / "montgomery"

from LungSegLib import data as lsdata  # noqa: E402
from LungSegLib.augment import make_dense_case  # noqa: E402
from LungSegLib.errors import LungSegError  # noqa: E402
from LungSegLib.evaluate import evaluate_labels  # noqa: E402
from LungSegLib.networks import MODEL_DIR, count_parameters, load_model, shipped_cards  # noqa: E402

SHIPPED = ("cxr_unet", "cxr_resunet", "ct2d_unet", "ct2d_dense_unet", "ct3d_unet")


def dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return float(2.0 * (a & b).sum() / (a.sum() + b.sum()))


# --------------------------------------------------------------------------------- shipped models
def test_shipped_cards_and_weights():
    cards = {c["name"]: c for c in shipped_cards()}
    for name in SHIPPED:
        assert name in cards, f"{name}.json missing in {MODEL_DIR}"
        card = cards[name]
        weights = Path(card["weights_path"])
        assert weights.is_file() and weights.stat().st_size <= 20 * 2**20
        for key in ("version", "parameters", "training", "metrics", "weights"):
            assert key in card, f"{name}: card lacks {key}"
        model = load_model(card)  # weights_only load, strict state dict
        assert count_parameters(model) == card["parameters"]
    for task in ("cxr", "ct2d", "ct3d"):
        defaults = [c for c in cards.values() if c["task"] == task and c.get("default")]
        assert len(defaults) == 1, f"{task}: exactly one default model expected"


def _ct_sample():
    for img in (REPO / "samples" / "ct-64.nrrd", CIP / "ct-64.nrrd"):
        if img.is_file() and (CIP / "wholeLung-64.nrrd").is_file():
            return img, CIP / "wholeLung-64.nrrd"
    pytest.skip("CT sample or its mask not available")


@pytest.mark.parametrize("engine,floor", [("ct2d", 0.88), ("ct3d", 0.93)])
def test_ct_models_segment_sample(engine, floor):
    from LungSegLib.io import read_image
    from LungSegLib.params import Parameters
    from LungSegLib.pipeline import run_case

    img, mask = _ct_sample()
    result = run_case(img, Parameters(engine=engine, device="cpu", threads=2))
    ref = read_image(mask).array
    assert dice(result.labels.array, ref) >= floor
    s = result.measurements["structures"]
    assert s["right"]["voxel_count"] > 0 and s["left"]["voxel_count"] > 0


@pytest.mark.parametrize("arch", ["unet", "resunet"])
def test_cxr_models_segment_sample(arch):
    from LungSegLib.params import Parameters
    from LungSegLib.pipeline import run_case

    name = "MCUCXR_0001_0.png"
    img = REPO / "samples" / f"montgomery_{name}"
    img = img if img.is_file() else MONTGOMERY / "images" / name
    if not img.is_file() or not (MONTGOMERY / "masks" / name).is_file():
        pytest.skip("Montgomery sample not available")
    result = run_case(img, Parameters(engine="cxr", arch=arch, device="cpu"))
    _, ref = lsdata.read_pair(img, MONTGOMERY / "masks" / name, radiograph=True)
    assert dice(result.labels.array, ref.array) >= 0.93
    # sided: the patient's right lung (label 1) lies on the image's left
    cols = np.nonzero(result.labels.array == 1)[1].mean(), np.nonzero(result.labels.array == 2)[1].mean()
    assert cols[0] < cols[1]


def test_cxr_background_weight_in_the_card_moves_the_decision_toward_lung(tmp_path):
    """``input.background_weight`` (cxr_resunet 2.1 and 2.2: 0.65, chosen on validation films) scales the background
    probability before the argmax: a smaller weight can only add lung pixels, never remove them."""
    import json
    import shutil

    from LungSegLib.networks import find_card
    from LungSegLib.params import Parameters
    from LungSegLib.pipeline import run_case

    card = find_card("cxr")
    assert 0 < card["input"].get("background_weight", 1.0) <= 1.0
    img = REPO / "samples" / "montgomery_MCUCXR_0001_0.png"
    areas = {}
    for weight in (1.0, 0.65, 0.05):
        weights = tmp_path / f"w{weight}" / "model.pt"
        weights.parent.mkdir()
        shutil.copy(card["weights_path"], weights)
        own = {k: v for k, v in card.items() if k not in ("card_path", "weights_path")}
        own["input"] = dict(card["input"], background_weight=weight)
        weights.with_suffix(".json").write_text(json.dumps(own))
        labels = run_case(img, Parameters(engine="cxr", arch=card["arch"], weights=str(weights), device="cpu")).labels
        areas[weight] = int((labels.array > 0).sum())
    assert areas[1.0] <= areas[0.65] <= areas[0.05] and areas[1.0] < areas[0.05]


# ------------------------------------------------------------------------------------- evaluate
def test_evaluate_known_numbers():
    ref = np.zeros((40, 40), np.uint8)
    ref[10:20, 5:15], ref[10:20, 25:35] = 1, 2
    m = evaluate_labels(ref, ref, (1.0, 1.0), True, 0.01)
    assert m["both"]["dice"] == pytest.approx(1.0) and m["both"]["iou"] == pytest.approx(1.0)
    assert m["both"]["hd95"] == pytest.approx(0.0) and m["both"]["size_error_pct"] == pytest.approx(0.0)
    half = ref.copy()
    half[15:20] = 0  # half of each lung missing
    m = evaluate_labels(half, ref, (2.0, 2.0), True, 0.04)
    assert m["right"]["dice"] == pytest.approx(2 * 50 / 150) and m["right"]["iou"] == pytest.approx(0.5)
    assert m["both"]["size_error_pct"] == pytest.approx(-50.0)
    assert m["hd95_unit"] == "mm" and m["both"]["hd95"] > 0


def test_evaluate_cli_self(tmp_path):
    """A folder of masks evaluated by the real pipeline against themselves-as-truth gives sane numbers."""
    from LungSegLib.evaluate import main

    if not MONTGOMERY.is_dir():
        pytest.skip("Montgomery data not available")
    out = tmp_path / "eval.json"
    names = sorted(p.name for p in (MONTGOMERY / "images").iterdir())[:2]
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
        for n in names:
            (tmp_path / sub / n).symlink_to(MONTGOMERY / sub / n)
    assert main(["--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--engine", "cxr",
                 "--device", "cpu", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["summary"]["cases"] == 2 and report["summary"]["both_dice_mean"] > 0.9
    assert report["cases"][0]["metrics"]["hd95_unit"] == "pixels"  # PNG: spacing unknown


def test_bad_data_folder(tmp_path):
    with pytest.raises(LungSegError):
        lsdata.find_pairs([tmp_path])
    with pytest.raises(LungSegError):
        lsdata.find_pairs([tmp_path / "missing"])


# ------------------------------------------------------------------------------- labels and aug
def test_radiograph_sides():
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 2:10], mask[5:15, 18:28] = 255, 255
    lab = lsdata.sided_labels(mask, radiograph=True)
    assert set(np.unique(lab[:, :15])) == {0, 1} and set(np.unique(lab[:, 15:])) == {0, 2}


def test_dense_case_is_dependent_and_dense():
    lungs = np.zeros((10, 40, 40), bool)
    lungs[:, 5:35, 3:17] = lungs[:, 5:35, 23:37] = True
    hu = np.where(lungs, -850, 40).astype(np.int16)
    dense, region = make_dense_case(hu, lungs, 0.25, seed=1)
    assert region.sum() == pytest.approx(0.25 * lungs.sum(), abs=1)
    assert np.all(region <= lungs)
    assert dense[region].min() >= -100 and dense[region].max() <= 60
    assert np.nonzero(region)[1].mean() > np.nonzero(lungs)[1].mean()  # posterior = larger y index


def test_low_resolution_augmentation_coarsens_only_the_image():
    """--lowres-prob: the slice loses fine detail (blocks or blur), the label is untouched."""
    from LungSegLib.augment import train_transforms

    rng = np.random.default_rng(0)
    item = {"image": rng.integers(0, 255, (1, 64, 64)).astype(np.uint8),
            "label": (rng.random((1, 64, 64)) > 0.5).astype(np.uint8)}
    plain = train_transforms("ct2d", None, dense_prob=0.0, lowres_prob=0.0)
    coarse = train_transforms("ct2d", None, dense_prob=0.0, lowres_prob=2.0)  # both variants always on

    def roughness(t):
        t.set_random_state(seed=3)
        out = t(dict(item))
        img = np.asarray(out["image"])[0]
        return np.abs(np.diff(img, axis=-1)).mean(), np.asarray(out["label"])
    rough_plain, _ = roughness(plain)
    rough_coarse, label = roughness(coarse)
    assert rough_coarse < 0.8 * rough_plain
    assert set(np.unique(label)) <= {0.0, 1.0}


# ------------------------------------------------------------------------------------- training
def _tiny_cxr(tmp_path, n=4) -> Path:
    if not MONTGOMERY.is_dir():
        pytest.skip("Montgomery data not available")
    root = tmp_path / "cxr"
    names = sorted(p.name for p in (MONTGOMERY / "images").iterdir())[:n]
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for name in names:
            (root / sub / name).symlink_to(MONTGOMERY / sub / name)
    return root


def _synthetic_ct(folder: Path, cases=3) -> Path:
    """Tiny chest phantoms in the <case>_ct / <case>_lungs layout (body 40 HU, lungs -850 HU)."""
    import SimpleITK as sitk

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(cases):
        z, y, x = np.mgrid[:12, :40, :48]
        body = ((y - 20) / 18.0) ** 2 + ((x - 24) / 22.0) ** 2 < 1
        lungs = ((((y - 19) / 11.0) ** 2 + ((x - 14 - k % 2) / 7.0) ** 2 < 1)
                 | (((y - 19) / 11.0) ** 2 + ((x - 34) / 7.0) ** 2 < 1)) & (z > 0) & (z < 11)
        hu = np.where(body, 40, -1000) + rng.normal(0, 15, body.shape)
        hu[lungs] = -850
        for arr, suffix, dtype in ((hu, "ct", np.int16), (lungs, "lungs", np.uint8)):
            img = sitk.GetImageFromArray(arr.astype(dtype))
            img.SetSpacing((8.0, 8.0, 10.0))
            sitk.WriteImage(img, str(folder / f"case{k}_{suffix}.nii.gz"))
    return folder


def test_train_cxr_tiny_epoch_and_resume(tmp_path):
    from LungSegLib.train import main

    root, out = _tiny_cxr(tmp_path), tmp_path / "models"
    args = ["--task", "cxr", "--arch", "unet", "--data", str(root), "--out", str(out), "--epochs", "1",
            "--batch-size", "2", "--device", "cpu", "--workers", "0", "--no-progress"]
    assert main(args) == 0
    card = json.loads((out / "cxr_unet.json").read_text())
    assert card["weights"] == "cxr_unet.pt" and card["training"]["epochs_run"] == 1
    assert (out / "cxr_unet.pt").is_file() and (out / "cxr_split.csv").is_file()
    assert (out / "cxr_unet_curve.png").is_file()
    load_model(dict(card, weights_path=str(out / "cxr_unet.pt")))
    assert main(args[:-7] + ["--epochs", "2", "--batch-size", "2", "--device", "cpu", "--workers", "0",
                             "--no-progress", "--resume", "--opacity-prob", "1", "--samples-per-epoch", "2",
                             "--keep", "last"]) == 0
    training = json.loads((out / "cxr_unet.json").read_text())["training"]
    assert training["epochs_run"] == 2 and training["samples_per_epoch"] == 2
    assert training["selection"].startswith("none: the final epoch")  # --keep last: no choice on validation
    import torch

    final = torch.load(out / "cxr_unet.ckpt.pt", weights_only=False)["model"]
    kept = torch.load(out / "cxr_unet.pt", weights_only=True)
    assert all(torch.equal(kept[k], final[k]) for k in final)
    assert "held out of training: lobar" in training["augmentation"]


@pytest.mark.parametrize("task", ["ct2d", "ct3d"])
def test_train_ct_tiny_epoch(tmp_path, task):
    from LungSegLib.train import main

    folder = _synthetic_ct(tmp_path / "ct")
    out = tmp_path / "models"
    assert main(["--task", task, "--data", str(folder), "--out", str(out), "--epochs", "1", "--batch-size", "2",
                 "--repeats", "1", "--device", "cpu", "--workers", "0", "--no-progress",
                 "--families", "trained", "--acquisition-prob", "0.5", "--dense-prob", "1"]) == 0
    augmentation = json.loads((out / f"{task}_unet.json").read_text())["training"]["augmentation"]
    assert "held out of training: perihilar, mixed" in augmentation and "patchy" in augmentation
    cache = lsdata.load_cache(out / f"{task}_cache.npz")
    y = cache["y"][0]
    assert set(np.unique(y)) == {0, 1, 2}
    # right lung (1) at smaller x on the canonical grid
    assert np.nonzero(y == 1)[-1].mean() < np.nonzero(y == 2)[-1].mean()
    assert (out / f"{task}_unet.pt").is_file()


def test_torchrun_two_process_gloo(tmp_path):
    root, out = _tiny_cxr(tmp_path), tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "LungSegLib.train", "--task", "cxr", "--data", str(root), "--out", str(out), "--epochs", "1",
           "--batch-size", "1", "--device", "cpu", "--workers", "0", "--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads((out / "cxr_unet.json").read_text())
    assert card["training"]["machine"].startswith("2 x cpu")
