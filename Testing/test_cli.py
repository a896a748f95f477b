"""The ``lungseg`` command-line contract: outputs, names, label values, CSV columns, exit codes."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import SAMPLES
from LungSegLib.cli import main
from LungSegLib.report import CSV_COLUMNS


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_segment_ct_writes_every_output(tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(SAMPLES / "ct-64.nrrd"), "-o", str(out), "--engine", "hu", "--quiet"]) == 0
    case = out / "ct-64"
    labels = sitk.ReadImage(str(case / "lungs.nii.gz"))
    src = sitk.ReadImage(str(SAMPLES / "ct-64.nrrd"))
    assert labels.GetSize() == src.GetSize() and labels.GetPixelID() == sitk.sitkUInt8
    assert np.allclose(labels.GetOrigin(), src.GetOrigin()) and np.allclose(labels.GetDirection(), src.GetDirection())
    assert set(np.unique(sitk.GetArrayFromImage(labels))) == {0, 1, 2}
    report = json.loads((case / "measurements.json").read_text())
    for key in ("case", "input", "modality", "engine", "arch", "model", "structures", "units", "method", "qc",
                "timings_s"):
        assert key in report
    assert report["units"]["weight_g"] == "g" and "density" in report["method"]["weight"]
    assert (case / "overlay.png").stat().st_size > 1000
    import slicerio
    seg = slicerio.read_segmentation(str(case / "lungs.seg.nrrd"))
    assert [s["name"] for s in seg["segments"]] == ["Right lung", "Left lung"]
    rows = _rows(out / "measurements.csv")
    assert list(rows[0].keys()) == CSV_COLUMNS
    assert [r["structure"] for r in rows] == ["right", "left", "both"]
    assert float(rows[2]["volume_ml"]) == pytest.approx(report["structures"]["both"]["volume_ml"])
    assert not (out / "errors.csv").exists()
    assert not list(case.glob(".*part*"))  # no temporary files left behind


def test_one_bad_case_does_not_stop_the_batch(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(SAMPLES / "ct-64.nrrd", inputs / "good.nrrd")
    (inputs / "broken.nii.gz").write_text("this is not a NIfTI file")
    out = tmp_path / "out"
    code = main(["segment", str(inputs), str(tmp_path / "missing.nrrd"), "-o", str(out), "--engine", "hu",
                 "--quiet"])
    assert code == 1
    errors = {r["case"]: r["error"] for r in _rows(out / "errors.csv")}
    assert set(errors) == {"broken", "missing"}
    assert "cannot be read" in errors["broken"] and "no such file" in errors["missing"]
    assert {r["case"] for r in _rows(out / "measurements.csv")} == {"good"}


def test_existing_outputs_are_not_overwritten_without_flag(tmp_path):
    out = tmp_path / "out"
    args = ["segment", str(SAMPLES / "ct-64.nrrd"), "-o", str(out), "--engine", "hu", "--quiet"]
    assert main(args) == 0
    stamp = (out / "ct-64" / "measurements.json").stat().st_mtime_ns
    assert main(args) == 1                        # refused, reported
    assert main(args + ["--resume"]) == 0         # skipped
    assert (out / "ct-64" / "measurements.json").stat().st_mtime_ns == stamp
    assert len(_rows(out / "measurements.csv")) == 3
    assert main(args + ["--overwrite"]) == 0


def test_input_is_never_modified(tmp_path):
    src = tmp_path / "ct.nrrd"
    shutil.copy(SAMPLES / "ct-64.nrrd", src)
    before = src.read_bytes()
    main(["segment", str(src), "-o", str(tmp_path / "out"), "--engine", "hu", "--quiet"])
    assert src.read_bytes() == before


def test_radiograph_writes_png_labels_of_the_input_size(tmp_path, random_weights):
    out = tmp_path / "out"
    code = main(["segment", str(SAMPLES / "montgomery_MCUCXR_0001_0.png"), "-o", str(out), "--quiet",
                 "--weights", str(random_weights("cxr"))])
    assert code == 0
    from PIL import Image
    lab = np.asarray(Image.open(out / "montgomery_MCUCXR_0001_0" / "lungs.png"))
    assert lab.shape == (256, 256) and lab.dtype == np.uint8 and set(np.unique(lab)) <= {0, 1, 2}


def test_usage_errors_exit_2_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "LungSegLib.cli", "segment", str(SAMPLES / "ct-64.nrrd"),
                           "-o", str(tmp_path), "--density", "7"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "density must be between" in proc.stderr and "Traceback" not in proc.stderr


def test_info_lists_versions_and_models(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "monai" in out and "device:" in out
    from LungSegLib.networks import shipped_cards

    for card in shipped_cards():  # each model with the numbers and pixel range auto chooses by
        line = next(x for x in out.splitlines() if x.strip().startswith(card["name"]))
        assert f"validation Dice {card['metrics']['validation']['dice_mean']}" in line
        limit = card["input"].get("max_inplane_spacing_mm")
        assert (f"pixels <= {limit} mm" in line) == (limit is not None)
