"""Issue 12, the user's files and the OUTDIR contract: files LungSeg did not create are never deleted or
changed whatever their names; case folders keep their input across runs (--resume never skips a case
that was not run); measurements.csv / errors.csv (and issue 11's regions.csv / index.html) describe every
case folder after any sequence of runs;
the lock never follows a planted link; case folders get the user's umask."""

import csv
import json
import os

import pytest

from badinputs import raises, write_phantom
from LungSegLib.batch import run_batch
from LungSegLib.cli import main
from LungSegLib.params import Parameters

HU = Parameters(engine="hu")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _run(inputs, out, **kw):
    return run_batch([str(p) for p in inputs], out, HU, show_progress=False, **kw)


def test_files_lungseg_did_not_create_are_never_touched_whatever_their_names(tmp_path):
    case = write_phantom(tmp_path / "a.nrrd")
    out = tmp_path / "out"
    out.mkdir()
    planted = {".results.old-2023/notes.txt": "keep", ".draft.part.docx": "keep", ".a.partial-x1y2": "keep",
               ".a.old-abc123/x": "keep", ".lungseg-0123abcd.a.partial/y": "keep", ".measurements.csv.k3.part.csv": "k",
               "notes.txt": "keep", "a.nrrd.part": "keep"}
    for name, text in planted.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    for kw in ({}, {"overwrite": True}, {"resume": True}):
        assert _run([case], out, **kw)["failed"] == 0
    assert all((out / n).read_text() == t for n, t in planted.items())
    assert not (out / ".lungseg.lock").exists()


def test_case_folders_keep_their_input_so_resume_never_skips_another_input(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_phantom(inputs / "a.nrrd")
    out = tmp_path / "out"
    assert _run([inputs], out)["ok"] == 1
    write_phantom(inputs / "a.nii.gz", lung_hu=-700.0)  # a new input with the same stem
    summary = _run([inputs], out, resume=True)
    assert (summary["ok"], summary["skipped"], summary["failed"]) == (1, 1, 0)
    recorded = {p.parent.name: json.loads(p.read_text())["input"] for p in out.glob("*/measurements.json")}
    assert recorded == {"a": str(inputs / "a.nrrd"), "a_2": str(inputs / "a.nii.gz")}
    # sibling: the same file name in another folder, in a later run
    other = tmp_path / "other"
    other.mkdir()
    write_phantom(other / "a.nrrd")
    assert _run([other / "a.nrrd"], out, resume=True)["ok"] == 1
    assert json.loads((out / "a_3" / "measurements.json").read_text())["input"] == str(other / "a.nrrd")
    assert _run([inputs / "a.nii.gz"], out, resume=True)["skipped"] == 1  # stable: still a_2


def test_measurements_and_errors_csv_describe_every_case_folder_after_several_runs(tmp_path):
    out = tmp_path / "out"
    a, b = write_phantom(tmp_path / "a.nrrd"), write_phantom(tmp_path / "b.nrrd")
    bad = tmp_path / "c.nrrd"
    bad.write_text("not an image")
    assert _run([a, bad], out)["failed"] == 1
    assert _run([b], out)["failed"] == 0  # other inputs: a stays listed, c's failure stays reported
    assert sorted({r["case"] for r in _rows(out / "measurements.csv")}) == ["a", "b"]
    assert [r["case"] for r in _rows(out / "errors.csv")] == ["c"]
    assert sorted({r["case"] for r in _rows(out / "regions.csv")}) == ["a", "b"]  # and the issue-11 summaries
    page = (out / "index.html").read_text()
    assert all(f'href="{c}/measurements.json"' in page for c in "ab") and page.count('class="failed"') == 1
    write_phantom(bad)  # the user fixes c
    assert _run([bad], out)["ok"] == 1
    assert sorted({r["case"] for r in _rows(out / "measurements.csv")}) == ["a", "b", "c"]
    assert not (out / "errors.csv").exists()
    assert sorted({r["case"] for r in _rows(out / "regions.csv")}) == ["a", "b", "c"]
    page = (out / "index.html").read_text()
    assert all(f'href="{c}/measurements.json"' in page for c in "abc") and 'class="failed"' not in page
    # a rerun that fails keeps the earlier folder: still in the csv files, shown failed in index.html
    bad.write_text("broken again")
    assert _run([bad], out, overwrite=True)["failed"] == 1
    assert sorted({r["case"] for r in _rows(out / "regions.csv")}) == ["a", "b", "c"]
    page = (out / "index.html").read_text()
    assert page.count('class="failed"') == 1 and 'href="c/measurements.json"' in page


@pytest.mark.parametrize("plant", ["symlink", "hardlink", "folder"])
def test_the_lock_never_follows_a_planted_link_nor_writes_outside_outdir(tmp_path, plant):
    case = write_phantom(tmp_path / "a.nrrd")
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "precious.txt"
    outside.write_text("precious")
    target = tmp_path / "not_yet_there"
    if plant == "symlink":
        os.symlink(target, out / ".lungseg.lock")
        words = ("symbolic link", "never follows")
    elif plant == "hardlink":
        os.link(outside, out / ".lungseg.lock")
        words = ("not a plain file of its own",)
    else:
        (out / ".lungseg.lock").mkdir()
        words = (".lungseg.lock",)
    raises(lambda: _run([case], out), *words)
    assert outside.read_text() == "precious" and not target.exists()
    assert not (out / "a").exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_case_folders_and_files_get_the_users_umask(tmp_path, umask):
    case = write_phantom(tmp_path / "a.nrrd")
    old = os.umask(umask)
    try:
        assert _run([case], tmp_path / "out")["ok"] == 1
    finally:
        os.umask(old)
    assert (tmp_path / "out" / "a").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "out" / "a" / "measurements.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "out" / "measurements.csv").stat().st_mode & 0o777 == 0o666 & ~umask


def test_outdir_that_is_a_file_or_read_only_is_one_line_and_exit_2(tmp_path, capsys):
    case = write_phantom(tmp_path / "a.nrrd")
    (tmp_path / "file").write_text("x")
    assert main(["segment", str(case), "-o", str(tmp_path / "file"), "--engine", "hu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "output folder is an existing file" in err and "Traceback" not in err and err.count("\n") == 1
    assert main(["segment", str(case), "-o", str(tmp_path / "file" / "sub"), "--engine", "hu", "--quiet"]) == 2
    assert "cannot create the output folder" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        assert main(["segment", str(case), "-o", str(ro), "--engine", "hu", "--quiet"]) == 2
        assert "not writable" in capsys.readouterr().err


def test_the_same_input_twice_is_one_case_and_empty_paths_are_refused(tmp_path, capsys):
    case = write_phantom(tmp_path / "a.nrrd")
    summary = _run([case, tmp_path / "a.nrrd", tmp_path / "." / "a.nrrd"], tmp_path / "out")
    assert summary["ok"] == 1 and sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a", "index.html", "measurements.csv", "regions.csv"]
    assert main(["segment", str(case), "-o", "", "--engine", "hu", "--quiet"]) == 2
    assert "empty output folder" in capsys.readouterr().err
    assert main(["segment", "", "-o", str(tmp_path / "out2"), "--engine", "hu", "--quiet"]) == 1
    assert "empty input path" in _rows(tmp_path / "out2" / "errors.csv")[0]["error"]


def _tree(root, skip):
    import hashlib

    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(dirpath, d) != str(skip)]
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                out[p] = ("link", os.readlink(p))
                continue
            with open(p, "rb") as f:
                out[p] = (os.stat(p).st_mode, hashlib.sha256(f.read()).hexdigest())
        out.update({os.path.join(dirpath, d): "dir" for d in dirs})
    return out


def test_a_run_writes_nothing_outside_outdir_and_changes_no_input(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_phantom(inputs / "a.nrrd")
    write_phantom(inputs / "b.nii.gz")
    (inputs / "bad.nrrd").write_text("not an image")
    os.symlink(tmp_path / "elsewhere", inputs / "dangling.nrrd")
    out = tmp_path / "out"
    before = _tree(tmp_path, out)
    for extra in ([], ["--overwrite"], ["--resume"]):
        main(["segment", str(inputs), "-o", str(out), "--engine", "hu", "--quiet", *extra])
    assert _tree(tmp_path, out) == before
    assert not (tmp_path / "elsewhere").exists()
