"""Batch behaviour of issue 5: bad cases are reported and the rest finish; kill -9 leaves no partial
output and --resume finishes the job; inputs are never modified, outputs never overwritten without
--overwrite; memory does not grow case after case."""

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import SimpleITK as sitk

from badinputs import nifti_declaring, phantom, raises, write_array
from conftest import REPO
from LungSegLib.batch import run_batch
from LungSegLib.cli import main
from LungSegLib.params import Parameters

CASE_FILES = {"lungs.nii.gz", "lungs.seg.nrrd", "overlay.png", "report.png", "measurements.json"}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _good_cases(folder, n, shape=(24, 40, 48), spacing=(4.0, 4.0, 6.0)):
    folder.mkdir(parents=True, exist_ok=True)
    image, _, _ = phantom(shape=shape, spacing=spacing)
    img = image.to_sitk()
    for i in range(n):
        sitk.WriteImage(img, str(folder / f"case{i:03d}.nrrd"))
    return folder


def _bad_cases(folder):
    """Nine bad files from the catalogue (the tenth, a missing path, is given on the command line)."""
    image, _, _ = phantom()
    (folder / "bad_text.nii.gz").write_text("not an image")
    write_array(folder / "bad_full.nii", image.array)
    data = (folder / "bad_full.nii").read_bytes()
    (folder / "bad_full.nii").unlink()
    (folder / "bad_truncated.nii").write_bytes(data[: len(data) // 2])
    write_array(folder / "bad_0_255.nrrd", ((image.array + 1000) // 5).clip(0, 255).astype(np.uint8))
    write_array(folder / "bad_constant.nrrd", np.zeros((16, 32, 32), np.int16))
    write_array(folder / "bad_nan.nrrd", np.full((16, 32, 32), np.nan, np.float32))
    sitk.WriteImage(sitk.JoinSeries([image.to_sitk()] * 2), str(folder / "bad_4d.nii.gz"))
    sitk.WriteImage(image.to_sitk()[:, :, 12:13], str(folder / "bad_single_slice.nrrd"))
    nifti_declaring(folder / "bad_bomb.nii.gz", (10000, 10000, 10000))
    rgb = sitk.GetImageFromArray(np.zeros((16, 32, 32, 3), np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(folder / "bad_rgb.nrrd"))


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_100_cases_with_10_bad_finish_the_90_and_report_the_10(tmp_path, capsys, record_property):
    inputs = _good_cases(tmp_path / "in", 90)
    _bad_cases(inputs)
    before = _digest(inputs)
    out = tmp_path / "out"
    args = ["segment", str(inputs), str(tmp_path / "bad_missing.nrrd"), "-o", str(out), "--engine", "hu", "--quiet"]
    t = time.perf_counter()
    code = main(args)
    seconds = time.perf_counter() - t
    record_property("batch_100_seconds", round(seconds, 1))
    err = capsys.readouterr().err
    assert code == 1
    assert "lungseg: 90 ok, 0 skipped, 10 failed" in err
    errors = {r["case"]: r for r in _rows(out / "errors.csv")}
    assert len(errors) == 10 and all(c.startswith("bad_") for c in errors)
    for case, row in errors.items():  # every reason names the input file and is one line
        assert row["error"] and "\n" not in row["error"] and "Traceback" not in row["error"]
        assert "internal error" not in row["error"], row["error"]
        assert case.replace("bad_", "") in row["error"] or row["input"] in row["error"]
    assert "expected" in errors["bad_truncated"]["error"] and "limit" in errors["bad_bomb"]["error"]
    rows = _rows(out / "measurements.csv")
    assert len(rows) == 270 and len({r["case"] for r in rows}) == 90
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert _digest(inputs) == before  # inputs never modified
    assert seconds < 60, f"100-case batch took {seconds:.1f} s"

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("case*/measurements.json")}
    assert main(args) == 1  # again without --overwrite/--resume: refused, nothing rewritten
    again = {r["case"]: r["error"] for r in _rows(out / "errors.csv")}
    assert sum("pass --overwrite" in e for e in again.values()) == 90
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("case*/measurements.json")}
    assert len(_rows(out / "measurements.csv")) == 270  # the finished cases stay listed
    print(f"100-case batch (90 good, 10 bad): {seconds:.1f} s", file=sys.__stderr__)


def _complete(case_dir):
    names = {p.name for p in case_dir.iterdir()}
    if names != CASE_FILES:
        return False
    json.loads((case_dir / "measurements.json").read_text())
    sitk.ReadImage(str(case_dir / "lungs.nii.gz"))
    return True


def test_kill_9_leaves_no_partial_output_and_resume_finishes(tmp_path, capsys):
    inputs = _good_cases(tmp_path / "in", 24, shape=(40, 64, 80), spacing=(4.0, 3.0, 3.0))
    before = _digest(inputs)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "LungSegLib.cli", "segment", str(inputs), "-o", str(out), "--engine", "hu",
           "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    try:
        while time.time() < deadline and proc.poll() is None:
            # kill while a case is being written (its hidden temporary folder exists), after 3 finished
            if out.exists() and len(list(out.glob("*/measurements.json"))) >= 3 and list(out.glob(".lungseg-*.partial")):
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.002)
        else:
            raise AssertionError("batch finished before it could be killed")
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    visible = [p for p in out.iterdir() if not p.name.startswith(".")]
    done = [p for p in visible if p.is_dir()]
    assert done and all(_complete(p) for p in done)  # a case folder is complete or absent
    assert {p.name for p in visible if p.is_file()} <= {"measurements.csv"}
    if (out / "measurements.csv").exists():
        assert {r["case"] for r in _rows(out / "measurements.csv")} <= {p.name for p in done}
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")]
    token = (out / ".lungseg.lock").read_text()  # the killed run's token names its temporaries
    assert token and all(n == ".lungseg.lock" or n.startswith(f".lungseg-{token}.") for n in hidden)
    # what a kill during the write of measurements.csv leaves, and the user's own look-alike names
    (out / f".lungseg-{token}.measurements.csv.k3j4.part.csv").write_text("case,modal")
    unfinished = next(f"case{i:03d}" for i in range(24) if not (out / f"case{i:03d}").exists())
    users = {f".{unfinished}.partial-x1y2z3": None, ".measurements.csv.k3j4.part.csv": "mine",
             ".draft.part.docx": "mine too", ".lungseg-notmine.partial": None}
    for name, text in users.items():
        (out / name).mkdir() if text is None else (out / name).write_text(text)

    assert main(["segment", str(inputs), "-o", str(out), "--engine", "hu", "--quiet", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"lungseg: {24 - len(done)} ok, {len(done)} skipped, 0 failed" in err
    cases = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(cases) == 24 and all(_complete(p) for p in cases)
    # the killed run's leftovers are gone, the user's files are untouched
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == sorted(users)
    assert all((out / n).is_dir() if t is None else (out / n).read_text() == t for n, t in users.items())
    assert len(_rows(out / "measurements.csv")) == 72
    assert _digest(inputs) == before
    print(f"kill -9 after {len(done)} finished cases; hidden leftovers {hidden}; resume redid {24 - len(done)}",
          file=sys.__stderr__)


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def test_memory_stays_bounded_over_50_cases(tmp_path, record_property):
    inputs = _good_cases(tmp_path / "in", 5, shape=(48, 64, 80), spacing=(4.0, 3.0, 3.0))
    params = Parameters(engine="hu")
    out = tmp_path / "out"
    run_batch([inputs], out, params, show_progress=False)  # warm-up: imports, caches, allocator pools
    rss = []
    for round_ in range(5):  # 50 cases, 10 per round, RSS measured between rounds
        paths = sorted(inputs.iterdir())
        names = []
        for i in range(10):
            p = tmp_path / "in50" / f"r{round_}_{i}.nrrd"
            p.parent.mkdir(exist_ok=True)
            p.write_bytes(paths[i % 5].read_bytes())
            names.append(str(p))
        summary = run_batch(names, out, params, show_progress=False)
        assert summary["ok"] == 10 and summary["failed"] == 0
        rss.append(_rss_mb())
    growth = rss[-1] - rss[0]
    record_property("rss_mb_after_rounds", [round(r, 1) for r in rss])
    print(f"VmRSS after each 10 cases: {[round(r) for r in rss]} MB (growth {growth:.1f} MB over 40 cases)",
          file=sys.__stderr__)
    assert growth < 40, f"RSS grew {growth:.1f} MB over 40 cases"


def test_unfinished_case_folder_needs_resume_and_a_second_batch_on_the_same_outdir_is_refused(tmp_path):
    import fcntl

    inputs = _good_cases(tmp_path / "in", 2)
    out = tmp_path / "out"
    (out / "case000").mkdir(parents=True)
    (out / "case000" / "lungs.nii.gz").write_bytes(b"half")  # e.g. left by an older LungSeg version
    args = ["segment", str(inputs), "-o", str(out), "--engine", "hu", "--quiet"]
    assert main(args) == 1
    assert "holds no finished case" in _rows(out / "errors.csv")[0]["error"]
    assert (out / "case000" / "lungs.nii.gz").read_bytes() == b"half"  # untouched without a flag
    assert main(args + ["--resume"]) == 0 and _complete(out / "case000")
    with open(out / ".lungseg.lock", "a") as f:  # another batch holds the folder
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        raises(lambda: run_batch([inputs], out, Parameters(engine="hu"), overwrite=True, show_progress=False),
               str(out), "another lungseg batch")
