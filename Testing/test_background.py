"""LungSegLib.background: the panel's child-process run, driven without Qt through its process API."""

import json
import os
import time

import numpy as np
import pytest

from conftest import SAMPLES
from LungSegLib.background import CANCELLED, DONE, FAILED, RUNNING, BackgroundRun
from LungSegLib.errors import CancelledError, LungSegError
from LungSegLib.io import read_image
from LungSegLib.params import Parameters
from LungSegLib.phantom import chest_phantom
from LungSegLib.pipeline import segment_image
from LungSegLib.report import _jsonable


def poll_until_done(run, timeout=240):
    end = time.time() + timeout
    progress = []
    while run.poll() == RUNNING:
        progress += run.take_progress()
        assert time.time() < end, "background run did not finish"
        time.sleep(0.05)
    return progress + run.take_progress()


def alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def test_background_run_gives_the_same_result_as_in_process_and_cleans_up():
    image = chest_phantom(shape=(48, 64, 80), spacing=(3.0, 3.0, 4.0))[0]
    image.origin, image.direction = (10.0, -20.0, 30.0), (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    run = BackgroundRun(image, Parameters(engine="hu")).start()
    rundir = run.rundir
    progress = poll_until_done(run)
    assert run.state == DONE and [m for _, m in progress][-2:] == ["measuring", "done"]
    assert [f for f, _ in progress] == sorted(f for f, _ in progress)
    result = run.result()
    same = chest_phantom(shape=(48, 64, 80), spacing=(3.0, 3.0, 4.0))[0]
    same.origin, same.direction = image.origin, image.direction  # the laterality QC reads the patient axes
    reference = segment_image(same, Parameters(engine="hu"))
    assert np.array_equal(result.labels.array, reference.labels.array)
    assert result.labels.origin == image.origin and result.labels.direction == image.direction
    assert result.measurements["structures"]["both"]["volume_ml"] == pytest.approx(
        reference.measurements["structures"]["both"]["volume_ml"], rel=1e-12)
    assert result.qc["flags"] == reference.qc["flags"] and result.engine == "hu"
    assert result.qc == json.loads(json.dumps(_jsonable(reference.qc)))  # numbers stay numbers
    assert not rundir.exists()


def test_cancel_kills_the_child_and_leaves_no_temporary_files():
    image = read_image(SAMPLES / "ct-64.nrrd")
    run = BackgroundRun(image, Parameters(engine="hu")).start()
    rundir, pid = run.rundir, run.process.pid
    end = time.time() + 120
    while not run.take_progress():  # wait until the child is at work
        assert run.poll() == RUNNING and time.time() < end
        time.sleep(0.02)
    assert rundir.exists() and alive(pid)
    run.cancel()
    assert run.state == CANCELLED and run.process.returncode == -9
    assert not alive(pid) and not rundir.exists()
    with pytest.raises(CancelledError):
        run.result()


def test_a_failing_run_reports_one_line_and_cleans_up():
    flat = chest_phantom(shape=(16, 32, 32), spacing=(4.0, 4.0, 4.0))[0]
    flat.array[:] = 3000.0  # a constant image
    run = BackgroundRun(flat, Parameters(engine="hu")).start()
    rundir = run.rundir
    assert run.wait(120) == FAILED
    assert "every voxel has the value 3000 (constant image)" in run.error and "\n" not in run.error
    with pytest.raises(LungSegError, match="constant image"):
        run.result()
    assert not rundir.exists()


def test_the_readers_facts_reach_the_child_as_in_process():
    """Issue 12's reader warnings and DICOM facts (LungSeg.ReaderMeta on the node) are checked in the child too:
    a warning is reported, a non-CT DICOM modality is refused as in-process."""
    image = chest_phantom(shape=(16, 32, 32), spacing=(4.0, 4.0, 4.0))[0]
    image.meta.update(warnings=["gantry tilt of 20.0 degrees: resampled"], dicom_modality="CT")
    run = BackgroundRun(image, Parameters(engine="hu")).start()
    assert run.wait(120) == DONE, run.error
    assert "gantry tilt of 20.0 degrees: resampled" in run.result().warnings
    image.meta["dicom_modality"] = "MR"
    run = BackgroundRun(image, Parameters(engine="hu")).start()
    assert run.wait(120) == FAILED and "DICOM modality MR" in run.error


def test_a_crashing_worker_reports_its_last_stderr_line(tmp_path):
    image = chest_phantom(shape=(16, 32, 32), spacing=(4.0, 4.0, 4.0))[0]
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'worker: out of memory' >&2\nexit 3\n")
    python.chmod(0o755)
    run = BackgroundRun(image, Parameters(engine="hu"), python=str(python)).start()
    assert run.wait(30) == FAILED and run.error == "worker: out of memory"
    run.cleanup()


def test_folders_left_by_a_crashed_slicer_are_removed_on_the_next_run(tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    from LungSegLib import background

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan, live, foreign = tmp_path / "lungseg-run-orphan", tmp_path / "lungseg-run-live", tmp_path / "lungseg-run-x"
    for folder, owner in ((orphan, dead.stdout.strip()), (live, str(os.getppid())), (foreign, None)):
        folder.mkdir()
        (folder / "input.npz").write_text("")
        if owner:
            (folder / background.OWNER).write_text(owner)
    run = BackgroundRun(chest_phantom(shape=(16, 32, 32), spacing=(4.0, 4.0, 4.0))[0], Parameters(engine="hu")).start()
    assert run.rundir.parent == tmp_path
    assert not orphan.exists() and live.exists() and foreign.exists()  # only a dead owner's folder goes
    run.cancel()
    assert not run.rundir.exists()
