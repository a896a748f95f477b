"""LungSeg/Scripts/lungseg_batch.py under plain python with slicer-core: outputs, failures, exit status."""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer", reason="slicer-core is not installed")
slicerio = pytest.importorskip("slicerio")

from conftest import REPO, SAMPLES  # noqa: E402
from LungSegLib.params import Parameters  # noqa: E402
from LungSegLib.pipeline import run_case  # noqa: E402

SCRIPT = REPO / "LungSeg" / "Scripts" / "lungseg_batch.py"
CIP_CT = SAMPLES / "ct-64.nrrd"
if not CIP_CT.exists():  # before the sample is bundled: the shared copy
    CIP_CT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ct" / "cip-copdgene-ct64" / "ct-64.nrrd"


def run_script(*args, cwd):
    # run from a foreign folder: the script must find LungSegLib relative to itself
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_batch_on_cip_sample_with_a_bad_case(tmp_path):
    if not CIP_CT.exists():
        pytest.skip(f"CIP sample {CIP_CT} not available")
    cases = tmp_path / "cases"
    cases.mkdir()
    shutil.copy(CIP_CT, cases / "ct-64.nrrd")
    (cases / "broken.nrrd").write_text("not an image")
    out = tmp_path / "out"
    proc = run_script("--input", cases, "--output", out, "--engine", "hu", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "case broken failed" in proc.stderr and "ct-64: ok" in proc.stdout
    with open(out / "errors.csv", newline="") as f:
        errors = list(csv.DictReader(f))
    assert [e["case"] for e in errors] == ["broken"] and "cannot be read" in errors[0]["error"]
    assert not (out / "broken").exists()
    case = out / "ct-64"
    # the same case folder layout as lungseg segment, plus Slicer's table files
    assert sorted(p.name for p in case.iterdir()) == ["lungs.nii.gz", "lungs.seg.nrrd", "measurements.csv",
                                                      "measurements.json", "measurements.schema.csv", "overlay.png",
                                                      "report.png"]
    assert {"regions.csv", "index.html"} <= {p.name for p in out.iterdir()}  # issue 11's batch summaries too

    reference = run_case(CIP_CT, Parameters(engine="hu"))
    seg = slicerio.read_segmentation(str(case / "lungs.seg.nrrd"))
    assert [s["name"] for s in seg["segments"]] == ["Right lung", "Left lung"]
    labels = slicerio.extract_segments(seg, [("Right lung", 1), ("Left lung", 2)])
    assert np.array_equal(labels["voxels"].T, reference.labels.array)
    assert np.allclose(labels["ijkToLPS"], reference.labels.ijk_to_lps())

    with open(case / "measurements.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["structure"] for r in rows] == ["Right lung", "Left lung", "Both lungs"]  # named like the segments
    for row, structure in zip(rows, ("right", "left", "both")):
        expected = reference.measurements["structures"][structure]
        assert int(row["voxel_count"]) == expected["voxel_count"]
        for column in ("volume_ml", "weight_g", "gas_volume_ml", "mean_hu", "non_aerated_volume_fraction"):
            assert float(row[column]) == pytest.approx(expected[column], rel=1e-5)  # CSV keeps 6 digits
        assert "qc_flags" not in row  # QC is printed per case, not repeated per row


def test_batch_regional_levels_and_position_match_the_cli(tmp_path):
    """--levels / --position cut the regional measurements as ``lungseg segment`` does (a prone scan exported
    without its position tags needs them), and bad values are usage errors."""
    import json

    from LungSegLib.cli import main as cli_main

    phantom_ct = tmp_path / "in" / "ph.nrrd"
    phantom_ct.parent.mkdir()
    shutil.copy(CIP_CT, phantom_ct)
    out = tmp_path / "script"
    proc = run_script("--input", phantom_ct, "--output", out, "--engine", "hu", "--levels", "4", "--position",
                      "prone", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert cli_main(["segment", str(phantom_ct), "-o", str(tmp_path / "cli"), "--engine", "hu", "--quiet",
                     "--levels", "4", "--position", "prone"]) == 0
    script, cli = (json.loads((tmp_path / d / "ph" / "measurements.json").read_text())["regions"]
                   for d in ("script", "cli"))
    assert script["position"] == "prone" and "--position" in script["position_source"]
    assert script["levels"] == cli["levels"] == 4 and script["rows"] == cli["rows"]
    with open(out / "regions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["region"] for r in rows if r["kind"] == "ventral_dorsal"} == {f"level_{k}" for k in range(1, 5)}
    assert {r["position"] for r in rows} == {"prone"}
    proc = run_script("--input", phantom_ct, "--output", tmp_path / "bad", "--levels", "0", cwd=tmp_path)
    assert proc.returncode == 2 and "levels must be between 1 and 100" in proc.stderr


def test_batch_rejects_bad_options_and_missing_input(tmp_path):
    proc = run_script("--input", tmp_path / "nowhere", "--output", tmp_path / "out", "--engine", "hu", cwd=tmp_path)
    assert proc.returncode == 1 and "no such file or folder" in proc.stderr
    assert (tmp_path / "out" / "errors.csv").exists()
    proc = run_script("--input", tmp_path, "--output", tmp_path / "out", "--engine", "magic", cwd=tmp_path)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_batch_radiograph_becomes_a_single_slice_segmentation(tmp_path, random_weights):
    picture = SAMPLES / "montgomery_MCUCXR_0001_0.png"
    if not picture.exists():
        pytest.skip(f"sample {picture} not available")
    out = tmp_path / "out"
    proc = run_script("--input", picture, "--output", out, "--engine", "auto", "--device", "cpu",
                      "--weights", random_weights("cxr"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "engine cxr" in proc.stdout and not (out / "errors.csv").exists()
    case = out / "montgomery_MCUCXR_0001_0"
    seg = slicerio.read_segmentation(str(case / "lungs.seg.nrrd"))
    assert seg["voxels"].shape[2] == 1 and [s["id"] for s in seg["segments"]] == ["right_lung", "left_lung"]
    with open(case / "measurements.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["structure"] for r in rows] == ["Right lung", "Left lung", "Both lungs"] and "pixel_count" in rows[0]
    assert "area_cm2" in rows[0] and "volume_ml" not in rows[0]


def test_batch_unwritable_output_is_one_line_and_status_2(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = run_script("--input", CIP_CT, "--output", blocker / "out", "--engine", "hu", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"lungseg_batch: error: --output {blocker / 'out'}: cannot write "
                                                "there (Not a directory)"]
    proc = run_script("--input", CIP_CT, cwd=tmp_path)  # no --output: usage, one line
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "--output" in proc.stderr


def write_dicom_series(folder: Path, array: np.ndarray, series_uid: str, spacing=(4.0, 4.0, 4.0)):
    """One CT series as single-slice DICOM files (SimpleITK's writer), signed 16-bit HU."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k, plane in enumerate(array):
        image = sitk.GetImageFromArray(np.round(plane).astype(np.int16)[None])
        image.SetSpacing(spacing)
        image.SetOrigin((0.0, 0.0, k * spacing[2]))
        for tag, value in (("0008|0060", "CT"), ("0020|000d", "1.2.826.0.1.3680043.8.498.1"),
                           ("0020|000e", series_uid), ("0008|0018", f"{series_uid}.{k + 1}"),
                           ("0020|0013", str(k + 1)), ("0020|0032", f"0\\0\\{k * spacing[2]}"),
                           ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0018|0050", str(spacing[2])), ("0010|0020", "PHANTOM")):
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series_uid[-6:]}_{k:03d}.dcm"))
        writer.Execute(image)


def test_batch_folder_uid_picks_that_series_and_reports_each_failed_case(tmp_path):
    from LungSegLib.phantom import chest_phantom

    image, _, _ = chest_phantom(shape=(32, 48, 48), spacing=(4.0, 4.0, 4.0))
    folder = tmp_path / "study"
    long_uid, short_uid = "1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.22"
    write_dicom_series(folder, image.array, long_uid)
    write_dicom_series(folder, image.array[4:24], short_uid)  # a second, shorter series in the same folder
    out = tmp_path / "out"
    proc = run_script("--input", f"{folder}::{short_uid}", f"{folder}::1.2.3", tmp_path / "missing.nrrd",
                      "--output", out, "--engine", "hu", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    case = out / f"study_{short_uid[-12:]}"
    seg = slicerio.read_segmentation(str(case / "lungs.seg.nrrd"))
    assert seg["voxels"].shape[2] == 20  # the series named by the UID, not the longest one
    failed = proc.stderr.strip().splitlines()
    assert len(failed) == 2 and all(line.startswith("lungseg_batch: ") for line in failed)
    assert "no DICOM series '1.2.3'" in proc.stderr and "missing.nrrd: no such file or folder" in proc.stderr
    with open(out / "errors.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2
    reference = run_case(f"{folder}::{short_uid}", Parameters(engine="hu"))  # the CLI's road, same numbers
    with open(case / "measurements.csv", newline="") as f:
        both = list(csv.DictReader(f))[2]
    assert float(both["volume_ml"]) == pytest.approx(reference.measurements["structures"]["both"]["volume_ml"], rel=1e-5)


FAKE_APP = """import sys, types
slicer = types.ModuleType("slicer")  # stands for the Slicer application's module: only app and util.exit
slicer.app = object()
def _exit(code):
    open({record!r}, "w").write(str(code))
slicer.util = types.SimpleNamespace(exit=_exit)
sys.modules["slicer"] = slicer
class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Hide())
"""


@pytest.mark.parametrize("hidden, args, code, line", [
    ((), ["--output", "{blocker}/out"], 2, "cannot write there"),          # error before the case loop
    (("SimpleITK",), ["--output", "{tmp}/out"], 2, "missing package: No module named 'SimpleITK'"),  # import
    ((), ["--bogus"], 2, "unrecognized arguments: --bogus"),
])
def test_under_slicer_the_script_always_asks_slicer_to_exit(tmp_path, hidden, args, code, line):
    """Slicer does not exit by itself after --python-script: every way out must call slicer.util.exit."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    record = tmp_path / "exit_code"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FAKE_APP.format(record=str(record), hidden=set(hidden)))
    args = [a.format(blocker=blocker, tmp=tmp_path) for a in args]
    proc = subprocess.run([sys.executable, str(SCRIPT), "--input", str(CIP_CT), *args, "--engine", "hu"],
                          env={"PYTHONPATH": f"{site}:{REPO}", "PATH": "/usr/bin:/bin"}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert record.read_text() == str(code), proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and line in lines[0] and "Traceback" not in proc.stderr


def test_batch_script_and_cli_share_one_outdir_contract(tmp_path):
    """Issue 12: same lock, same case folder, no mixing: the script neither replaces a CLI case without
    --overwrite nor writes while a CLI batch holds OUTDIR; with --overwrite the folder is replaced whole."""
    import fcntl
    import json

    from badinputs import write_phantom
    from LungSegLib.cli import main as cli

    case = write_phantom(tmp_path / "a.nrrd")
    out = tmp_path / "out"
    assert cli(["segment", str(case), "-o", str(out), "--engine", "hu", "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in (out / "a").iterdir()}
    proc = run_script("--input", case, "--output", out, "--engine", "hu", cwd=tmp_path)
    assert proc.returncode == 1 and "pass --overwrite" in proc.stderr
    assert {p.name: p.read_bytes() for p in (out / "a").iterdir()} == before
    with open(out / ".lungseg.lock", "a") as f:  # a CLI batch is writing
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        proc = run_script("--input", case, "--output", out, "--engine", "hu", "--overwrite", cwd=tmp_path)
    assert proc.returncode == 2 and "another lungseg batch" in proc.stderr
    proc = run_script("--input", case, "--output", out, "--engine", "hu", "--overwrite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (out / "a").iterdir())
    assert names == ["lungs.nii.gz", "lungs.seg.nrrd", "measurements.csv", "measurements.json",
                     "measurements.schema.csv", "overlay.png", "report.png"]
    assert json.loads((out / "a" / "measurements.json").read_text())["input"] == str(case)
    with open(out / "measurements.csv", newline="") as f:
        assert {r["case"] for r in csv.DictReader(f)} == {"a"}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_batch_script_reports_special_files_and_stops_cleanly_on_sigterm(tmp_path):
    import os
    import signal
    import time

    os.mkfifo(tmp_path / "pipe.nrrd")
    proc = run_script("--input", tmp_path / "pipe.nrrd", "/dev/null", "--output", tmp_path / "out", "--engine", "hu",
                      cwd=tmp_path)  # a blocking open would hang here (timeout 300 s)
    assert proc.returncode == 1 and "named pipe (FIFO)" in proc.stderr and "character device" in proc.stderr
    assert "Traceback" not in proc.stderr
    cases = tmp_path / "cases"
    cases.mkdir()
    from badinputs import write_phantom

    for i in range(30):
        write_phantom(cases / f"c{i:02d}.nrrd", shape=(40, 64, 80), spacing=(4.0, 3.0, 3.0))
    out = tmp_path / "out2"
    p = subprocess.Popen([sys.executable, str(SCRIPT), "--input", str(cases), "--output", str(out), "--engine", "hu"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None and len(list(out.glob("*/measurements.json"))) < 1:
        time.sleep(0.01)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1 and "interrupted" in err and "--resume" in err and "Traceback" not in err
    assert not [x for x in out.iterdir() if x.name.startswith(".")]


def test_batch_script_reads_dicom_geometry_from_the_tags_not_a_guess(tmp_path):
    """The script's DICOM series go through LungSegLib's reader: a tilted series is resampled and its warning
    reaches measurements.json; a series without positions is refused naming the tag (issue 12)."""
    import json

    import numpy as np

    from badinputs import copy_dicom
    from conftest import shared_path

    dicom = shared_path("ct", "cip-copdgene-ct64", "ct-64Dicom")

    def tilt(ds, i):
        p = [float(v) for v in ds.ImagePositionPatient]
        p[1] += i * 3.98734 * np.tan(np.radians(20))
        ds.ImagePositionPatient = p
    copy_dicom(dicom, tmp_path / "cases" / "tilted", edit=tilt)
    copy_dicom(dicom, tmp_path / "cases" / "noposition", edit=lambda ds, i: delattr(ds, "ImagePositionPatient"))
    out = tmp_path / "out"
    proc = run_script("--input", tmp_path / "cases", "--output", out, "--engine", "hu", cwd=tmp_path)
    assert proc.returncode == 1 and "ImagePositionPatient (0020,0032) is missing on 79 of 79" in proc.stderr
    report = json.loads((out / "tilted" / "measurements.json").read_text())
    assert any("gantry tilt of 20.0 degrees" in w for w in report["warnings"])
    reference = run_case(dicom, Parameters(engine="hu")).measurements["structures"]["both"]["volume_ml"]
    assert report["structures"]["both"]["volume_ml"] == pytest.approx(reference, rel=0.03)


def test_batch_dicom_seg_of_a_dicom_series_matches_the_cli(tmp_path):
    """--dicom-seg: the DICOM sources travel with the volume node (its reader attributes), so the script's
    lungs.seg.dcm references every input slice and holds the CLI's frames; a volume file cannot have one."""
    pytest.importorskip("highdicom")
    import pydicom
    from test_dicom_seg import check_seg_against_nifti, write_series

    from LungSegLib.cli import main as cli_main
    from LungSegLib.io import read_image

    series = write_series(tmp_path / "in" / "ct-64Dicom", read_image(CIP_CT))
    proc = run_script("--input", series, "--output", tmp_path / "script", "--engine", "hu", "--dicom-seg",
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    seg = check_seg_against_nifti(tmp_path / "script" / "ct-64Dicom", series)
    assert cli_main(["segment", str(series), "-o", str(tmp_path / "cli"), "--engine", "hu", "--quiet",
                     "--dicom-seg"]) == 0
    cli = pydicom.dcmread(str(tmp_path / "cli" / "ct-64Dicom" / "lungs.seg.dcm"))
    assert np.array_equal(seg.pixel_array, cli.pixel_array)
    proc = run_script("--input", CIP_CT, "--output", tmp_path / "nrrd", "--engine", "hu", "--dicom-seg",
                      cwd=tmp_path)
    assert proc.returncode == 1 and "--dicom-seg needs a DICOM CT series" in proc.stderr
