"""Batch runner behind ``lungseg segment``: every case walks the pipeline; a failing case is reported
and the others go on; outputs are atomic; a finished case is never overwritten without asking."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from .errors import LungSegError
from .io import case_name, list_cases, unique_names, write_text
from .pipeline import run_case
from .report import csv_rows, rows_to_csv, write_case
from .summary import write_batch_summary

ERROR_COLUMNS = ["case", "input", "error"]
LOCK_NAME = ".lungseg.lock"


PARTIAL = re.compile(r"^\..+\.(partial|old)-[A-Za-z0-9_]+$")  # our temporary case folders
PART_FILE = re.compile(r"^\..+\.part(\.[A-Za-z0-9.]+)?$")     # atomic_path's temporary files


def remove_stale_partials(outdir: Path) -> int:
    """Remove what an interrupted run (kill -9, power cut) left: hidden temporary case folders and files.
    Only names LungSeg itself creates are touched."""
    n = 0
    for entry in outdir.iterdir():
        if entry.is_dir() and not entry.is_symlink() and PARTIAL.match(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            n += 1
        elif entry.is_file() and PART_FILE.match(entry.name):
            entry.unlink(missing_ok=True)
            n += 1
    return n


def write_case_atomically(result, case: str, case_dir: Path) -> dict:
    """Write every file of a case into a hidden temporary folder beside it, then rename the folder into
    place: OUTDIR/<case> is either absent, the previous complete result, or the new complete result."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{case}.partial-", dir=case_dir.parent))
    try:
        report = write_case(result, case, tmp)
        old = None
        if case_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{case}.old-", dir=case_dir.parent))
            case_dir.replace(old / "case")
        tmp.replace(case_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return report
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def outdir_lock(outdir: Path):
    """One batch at a time per OUTDIR (so removing another run's temporary folders is safe). The lock is an
    advisory ``flock`` the kernel releases when the process dies, even by kill -9; no-op where unsupported."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; run one batch per OUTDIR
        yield
        return
    path = outdir / LOCK_NAME
    with open(path, "a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise LungSegError(f"{outdir}: another lungseg batch is writing to this folder; wait for it to end "
                               "or choose another output folder") from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def run_batch(inputs, outdir: Path, params, overwrite=False, resume=False, show_progress=True, options=None) -> dict:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    with outdir_lock(outdir):
        return _run_batch(inputs, outdir, params, overwrite, resume, show_progress, options)


def _run_batch(inputs, outdir: Path, params, overwrite, resume, show_progress, options=None) -> dict:
    remove_stale_partials(outdir)
    cases, errors = [], []
    for raw in inputs:  # a bad input path is one failed case, not the end of the batch
        try:
            cases.extend(list_cases([raw]))
        except LungSegError as e:
            errors.append({"case": case_name(Path(raw)), "input": str(raw), "error": str(e)})
    cases = unique_names(cases)
    rows, ok, skipped = [], 0, 0
    bar = _progress_bar(len(cases), show_progress)
    for case, path in cases:
        case_dir = outdir / case
        done = case_dir / "measurements.json"
        try:
            if not case_dir.resolve().is_relative_to(outdir.resolve()):
                raise LungSegError(f"case name {case!r} would write outside {outdir}")
            if done.exists() and not overwrite:
                finished = csv_rows(case, json.loads(done.read_text()))
                rows.extend(finished)  # still on disk: measurements.csv keeps listing it
                if not resume:
                    raise LungSegError(f"{done} exists; pass --overwrite to replace it or --resume to skip it")
                skipped += 1
                continue
            if case_dir.exists() and not done.exists() and not (overwrite or resume):
                raise LungSegError(f"{case_dir} exists but holds no finished case; pass --resume or --overwrite "
                                   "to replace it")
            bar.set_description(case[:30])
            result = run_case(path, params, progress=_slice_progress(bar, case), options=options)
            rows.extend(csv_rows(case, write_case_atomically(result, case, case_dir)))
            ok += 1
        except LungSegError as e:
            errors.append({"case": case, "input": str(path), "error": str(e)})
            print(f"lungseg: case {case} failed: {e}", file=sys.stderr)
        except Exception as e:  # a bug must not stop the batch either; keep its traceback for the report
            msg = f"internal error {type(e).__name__}: {e}"
            errors.append({"case": case, "input": str(path), "error": msg})
            print(f"lungseg: case {case} failed: {msg}\n{traceback.format_exc(limit=3)}", file=sys.stderr)
        finally:
            bar.update(1)
            write_text(outdir / "measurements.csv", rows_to_csv(rows))
    bar.close()
    write_batch_summary(outdir, [case for case, _ in cases], errors)  # regions.csv, index.html
    if errors:
        write_text(outdir / "errors.csv", rows_to_csv(errors, ERROR_COLUMNS))
    elif (outdir / "errors.csv").exists():
        (outdir / "errors.csv").unlink()
    return {"ok": ok, "skipped": skipped, "failed": len(errors), "errors": errors}


def _progress_bar(total, enabled):
    from tqdm import tqdm

    return tqdm(total=total, unit="case", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def _slice_progress(bar, case):
    def report(fraction, message):
        bar.set_postfix_str(f"{int(100 * fraction):3d}% {message}"[:60], refresh=True)
        return True
    return report
