"""bench/dense_lung_stress.py (the dense-lung robustness report) on a tiny synthetic CT with the hu engine:
JSON structure, PNG written, and numbers that make sense (a threshold keeps clean lung, drops dense lung)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import SimpleITK as sitk

from conftest import REPO
from LungSegLib.phantom import chest_phantom


def _bench():
    spec = importlib.util.spec_from_file_location("dense_lung_stress", REPO / "bench" / "dense_lung_stress.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_robustness_report_on_a_phantom_with_the_hu_engine(tmp_path, capsys):
    image, labels, _ = chest_phantom(shape=(40, 64, 80), spacing=(5.0, 5.0, 6.0), noise_hu=20, lung_hu=-850,
                                     semi_axes_mm=(70, 90, 100))
    data = tmp_path / "data"
    data.mkdir()
    sitk.WriteImage(image.to_sitk(), str(data / "ph_ct.nii.gz"))
    sitk.WriteImage(image.with_array(labels).to_sitk(), str(data / "ph_lungs.nii.gz"))
    bench = _bench()
    args = ["--data", str(data), "--engines", "hu", "--families", "perihilar", "--fractions", "0.25",
            "--json", str(tmp_path / "r.json"), "--png", str(tmp_path / "r.png"),
            "--card-summary", str(tmp_path / "card.json"), "--quiet"]
    assert bench.main(args) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["families"] == ["perihilar"] and result["held_out"] == ["perihilar"]
    assert result["fractions"] == [0.25] and result["engines"] == ["hu"]
    clean = result["summary"]["hu"]["clean"]
    assert clean["dice_mean"] > 0.97 and abs(clean["weight_error_pct_mean"]) < 3
    fam = result["summary"]["hu"]["families"]["perihilar"]
    assert fam["held_out"] is True
    row = fam["fractions"]["0.25"]
    assert row["dense_region_recall_mean"] < 0.6 and row["weight_error_pct_mean"] < -20 and not row["passed"]
    case = result["cases"]["ph"]["painted"]["perihilar"]["0.25"]
    assert abs(case["dense_fraction"] - 0.25) <= 0.02
    assert case["engines"]["hu"]["dice"] == row["dice_mean"] < clean["dice_mean"]
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "perihilar   *" in capsys.readouterr().out
    block = json.loads((tmp_path / "card.json").read_text())["hu"]  # what a model card and auto read
    assert block["worst_family_25"] == "perihilar" and block["dice_worst_family_25"] == round(row["dice_mean"], 4)
    assert block["at_25"]["perihilar"]["held_out"] is True and block["clean"]["dice"] > 0.97
    assert block["weight_error_pct_worst_family_25"] == round(row["weight_error_pct_mean"], 1)
    # same seed, same painting: a rerun gives identical numbers
    assert bench.main(args[:-7] + ["--json", str(tmp_path / "r2.json"), "--quiet"]) == 0
    again = json.loads((tmp_path / "r2.json").read_text())["cases"]["ph"]["painted"]["perihilar"]["0.25"]
    for key in ("dice", "dense_region_recall", "weight_g", "true_weight_g"):
        assert again["engines"]["hu"][key] == case["engines"]["hu"][key]


def test_robustness_report_refuses_bad_fractions(tmp_path, capsys):
    assert _bench().main(["--data", str(tmp_path), "--fractions", "25"]) == 2
    assert "must be between 0 and 1" in capsys.readouterr().err
