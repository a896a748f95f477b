"""Issue 12, hangs, crashes and tracebacks: special files never opened, Ctrl-C / SIGTERM / a full disk end
in one line with the documented exit status and nothing half-written, absurd parameters are usage errors,
DICOM CD layouts are read, extreme shapes get a message naming the problem."""

import csv
import os
import resource
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk

from badinputs import HU, copy_dicom, phantom, raises, write_phantom
from conftest import REPO, shared_path
from LungSegLib.image import Image
from LungSegLib.io import list_cases, read_image
from LungSegLib.pipeline import segment_image

DICOM = ("ct", "cip-copdgene-ct64", "ct-64Dicom")
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _cli(*args, timeout=120, **kw):
    return subprocess.run([sys.executable, "-m", "LungSegLib.cli", *map(str, args)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout, **kw)


def _errors(out):
    with open(out / "errors.csv", newline="") as f:
        return {r["case"]: r["error"] for r in csv.DictReader(f)}


def test_fifos_devices_and_sockets_are_reported_never_opened(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_phantom(inputs / "good.nrrd")
    os.mkfifo(inputs / "pipe.nrrd")
    os.mkfifo(inputs / "pipe2.dcm")
    os.mkfifo(inputs / "IM0001")  # no suffix: would be sniffed for the DICOM preamble
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(inputs / "sock.nii.gz"))
    try:
        os.mkfifo(tmp_path / "lone.nrrd")
        out = tmp_path / "out"
        proc = _cli("segment", inputs, tmp_path / "lone.nrrd", "/dev/null", "-o", out, "--engine", "hu", "--quiet",
                    timeout=60)  # a blocking open would hang here
    finally:
        sock.close()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "1 ok, 0 skipped, 6 failed" in proc.stderr
    errors = _errors(out)
    assert sum("named pipe (FIFO)" in e for e in errors.values()) == 4
    assert "socket" in errors["sock"] and "character device" in errors["null"]
    assert (out / "good" / "measurements.json").exists()
    raises(lambda: read_image(tmp_path / "lone.nrrd"), "named pipe (FIFO)", "never opens special files")
    from LungSegLib.params import Parameters

    raises(lambda: Parameters(weights=str(tmp_path / "lone.nrrd")).validate(), "named pipe (FIFO)")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_and_sigterm_end_in_one_line_nothing_half_written_and_resume_finishes(tmp_path, sig):
    if signal.getsignal(sig) is signal.SIG_IGN:  # nohup ignores SIGHUP; a shell's background job ignores SIGINT
        pytest.skip(f"{sig.name} is ignored by the test runner: the child inherits that, and LungSeg keeps an "
                    "ignored signal ignored on purpose")
    inputs = tmp_path / "in"
    inputs.mkdir()
    image, _, _ = phantom(shape=(40, 64, 80), spacing=(4.0, 3.0, 3.0))
    for i in range(16):
        sitk.WriteImage(image.to_sitk(), str(inputs / f"case{i:02d}.nrrd"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "LungSegLib.cli", "segment", str(inputs), "-o", str(out), "--engine", "hu", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None and len(list(out.glob("*/measurements.json"))) < 2:
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert err.strip().splitlines()[-1].startswith("lungseg: interrupted;") and "--resume" in err
    assert "Traceback" not in err
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporaries, lock released
    done = [p for p in out.iterdir() if p.is_dir()]
    assert all((p / "measurements.json").exists() for p in done) and len(done) < 16
    proc = _cli("segment", inputs, "-o", out, "--engine", "hu", "--quiet", "--resume")
    assert proc.returncode == 0 and f"{16 - len(done)} ok, {len(done)} skipped, 0 failed" in proc.stderr


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes then fail with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000, 1_000))


def test_full_disk_is_one_line_per_case_and_leaves_no_partial_output(tmp_path):
    case = write_phantom(tmp_path / "a.nrrd")
    out = tmp_path / "out"
    proc = _cli("segment", case, "-o", out, "--engine", "hu", "--quiet", preexec_fn=_limit_file_size)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "case a failed: cannot read or write (File too large" in proc.stderr
    assert not (out / "a").exists() and not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("flag,value,words", [("--threads", "100000", "threads must be between 0 and"),
                                              ("--threads", "-1", "threads must be between 0 and"),
                                              ("--density", "1e308", "density must be between")])
def test_absurd_parameters_are_usage_errors_with_the_allowed_range(tmp_path, flag, value, words):
    proc = _cli("segment", REPO / "samples" / "ct-64.nrrd", "-o", tmp_path / "out", flag, value, timeout=60)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "out").exists()


def _cd(tmp_path, series=1):
    """A DICOM CD: DICOMDIR + PT000000/ST000000/SE00000n/IM0000nn (pydicom's FileSet writes it)."""
    import pydicom
    from pydicom.fileset import FileSet
    from pydicom.uid import generate_uid

    src = copy_dicom(shared_path(*DICOM), tmp_path / "flat")
    fs = FileSet()
    for s in range(series):
        uid = generate_uid()
        for p in sorted(src.iterdir()):
            ds = pydicom.dcmread(str(p))
            if s:
                ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            fs.add(ds)
    fs.write(str(tmp_path / "cd"))
    return tmp_path / "cd"


def test_dicom_cd_layout_is_read_through_its_folders(tmp_path):
    cd = _cd(tmp_path)
    cases = list_cases([cd])
    assert len(cases) == 1 and cases[0][0].startswith("cd_PT")
    for path in (cd, cd / "DICOMDIR", cases[0][1]):
        assert read_image(path).array.shape == (79, 64, 64)
    assert len(list_cases([tmp_path])) >= 1  # a folder of cases holding the CD


def test_dicom_cd_with_two_series_gives_two_cases_or_names_them(tmp_path):
    cd = _cd(tmp_path, series=2)
    assert len(list_cases([cd])) == 2
    raises(lambda: read_image(cd), "DICOM CD layout (DICOMDIR) with 2 series folders", "give one series folder")


def test_extreme_aspect_images_are_refused_naming_the_shape(tmp_path):
    strip = Image(np.random.default_rng(0).integers(0, 255, (40, 2000)).astype(np.float32), spacing=(1.0, 1.0),
                  origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0), modality="CXR")
    raises(lambda: segment_image(strip, __import__("LungSegLib.params").params.Parameters(engine="cxr")),
           "2000x40 pixels", "aspect ratio of 50:1")
    image, _, _ = phantom(shape=(24, 10, 200), spacing=(2.0, 2.0, 6.0))
    raises(lambda: segment_image(image, HU), "axial field of view 400 x 20 mm", "aspect ratio of 20:1")


def test_special_files_inside_a_dicom_series_folder_lose_no_slice(tmp_path):
    folder = copy_dicom(shared_path(*DICOM), tmp_path / "series")
    os.mkfifo(folder / "IMG9999")
    os.mkfifo(folder / "pipe.dcm")  # GDCM's own scan drops slices beside these
    image = read_image(folder)
    assert np.array_equal(image.array, read_image(shared_path(*DICOM)).array)


def test_file_names_that_are_not_utf8_are_reported_not_a_crash(tmp_path):
    """SimpleITK and GDCM abort the whole process (std::logic_error) on such a name: never hand one over."""
    import shutil

    inputs = tmp_path / "in"
    inputs.mkdir()
    good = write_phantom(inputs / "good.nrrd")
    shutil.copy(good, os.fsencode(inputs) + b"/latin1_\xe9.nrrd")
    series = copy_dicom(shared_path(*DICOM), tmp_path / "series")
    first = sorted(series.iterdir())[0]
    os.rename(first, os.fsencode(series) + b"/IMG_\xff.dcm")  # one slice with a bad name
    out = tmp_path / "out"
    proc = _cli("segment", inputs, series, "-o", out, "--engine", "hu", "--quiet")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "1 failed" in proc.stderr, proc.stderr
    errors = _errors(out)
    assert list(errors) == ["latin1"] and "file name is not valid UTF-8" in errors["latin1"]
    assert (out / "good" / "measurements.json").exists() and (out / "series" / "measurements.json").exists()
    image = read_image(series)  # the badly named (first) slice is left out
    assert image.array.shape[0] == 78 and any("not readable DICOM and were ignored" in w for w in image.meta["warnings"])
    raises(lambda: read_image(os.fsdecode(os.fsencode(inputs) + b"/latin1_\xe9.nrrd")), "not valid UTF-8")


def test_a_bad_max_voxels_environment_variable_is_no_traceback(tmp_path, monkeypatch, capsys):
    proc = subprocess.run([sys.executable, "-m", "LungSegLib.cli", "segment", str(REPO / "samples" / "ct-64.nrrd"),
                           "-o", str(tmp_path / "out"), "--engine", "hu", "--quiet"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**ENV, "LUNGSEG_MAX_VOXELS": "abc"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "LUNGSEG_MAX_VOXELS='abc' is not a positive number" in proc.stderr
    from LungSegLib.limits import _env_voxels

    for value, expected in (("-5", 7), ("inf", 7), ("2e9", 2_000_000_000)):
        monkeypatch.setenv("LUNGSEG_MAX_VOXELS", value)
        assert _env_voxels(7) == expected
