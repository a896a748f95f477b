"""Batch runner behind ``lungseg segment``: every case walks the pipeline; a failing case is reported
and the others go on; outputs are atomic; a finished case is never overwritten without asking."""

from __future__ import annotations

import functools
import sys
import traceback
from pathlib import Path

from .errors import LungSegError, os_error_message
from .io import case_name, list_cases
from .outdir import ERROR_COLUMNS, LOCK_NAME, OutputFolder  # noqa: F401 (ERROR_COLUMNS, LOCK_NAME were here)
from .pipeline import run_case
from .report import write_case
from .summary import write_batch_summary


def run_batch(inputs, outdir: Path, params, overwrite=False, resume=False, show_progress=True,
              case_writer=None, prog="lungseg", tracebacks=True, options=None) -> dict:
    """``case_writer(case, path, params, progress)`` segments one case and returns ``write(folder) -> report``
    (default: :func:`pipeline.run_case` with ``options`` (:class:`options.CaseOptions`) and
    :func:`report.write_case`; the Slicer batch script passes its own, its ``prog`` name for the stderr lines,
    and ``tracebacks=False``: a failed case is one line there)."""
    if case_writer is None:
        case_writer = functools.partial(_cli_case, options=options)
    with OutputFolder(outdir) as out:  # the OUTDIR contract: lock, owned temporaries, stable case folders
        return _run_batch(inputs, out, params, overwrite, resume, show_progress, case_writer, prog, tracebacks)


def _cli_case(case, path, params, progress, options=None):
    result = run_case(path, params, progress=progress, options=options)
    return lambda folder: write_case(result, case, folder)


def _run_batch(inputs, out: OutputFolder, params, overwrite, resume, show_progress, case_writer, prog,
               tracebacks) -> dict:
    outdir = out.path
    cases, errors = [], []
    for raw in inputs:  # a bad input path is one failed case, not the end of the batch
        try:
            cases.extend(list_cases([raw], unique=False))
        except (LungSegError, OSError) as e:  # OSError: e.g. a folder that cannot be listed
            msg = str(e) if isinstance(e, LungSegError) else f"cannot read ({os_error_message(e)})"
            errors.append({"case": case_name(Path(raw)), "input": str(raw), "error": msg})
            print(f"{prog}: input {raw} failed: {msg}", file=sys.stderr)
    cases = out.assign(cases)  # unique in this run and stable across runs
    previous, tried = out.previous_errors(), {c for c, _ in cases} | {e["case"] for e in errors}
    ok, skipped = 0, 0
    bar = _progress_bar(len(cases), show_progress)
    for case, path in cases:
        case_dir = outdir / case
        done = case_dir / "measurements.json"
        try:
            if not case_dir.resolve().is_relative_to(outdir.resolve()):
                raise LungSegError(f"case name {case!r} would write outside {outdir}")
            if done.exists() and not overwrite:
                if not resume:
                    raise LungSegError(f"{done} exists; pass --overwrite to replace it or --resume to skip it")
                skipped += 1
                continue
            if case_dir.exists() and not done.exists() and not (overwrite or resume):
                raise LungSegError(f"{case_dir} exists but holds no finished case; pass --resume or --overwrite "
                                   "to replace it")
            bar.set_description(case[:30])
            out.write_case(case, case_writer(case, path, params, _slice_progress(bar, case)))
            ok += 1
        except LungSegError as e:
            errors.append({"case": case, "input": str(path), "error": str(e)})
            print(f"{prog}: case {case} failed: {e}", file=sys.stderr)
        except OSError as e:  # a full disk, a read-only or vanished folder: say which, go on
            msg = f"cannot read or write ({os_error_message(e)})"
            errors.append({"case": case, "input": str(path), "error": msg})
            print(f"{prog}: case {case} failed: {msg}", file=sys.stderr)
        except Exception as e:  # a bug must not stop the batch either; keep its traceback for the report
            msg = f"internal error {type(e).__name__}: {e}"
            errors.append({"case": case, "input": str(path), "error": msg})
            trace = f"\n{traceback.format_exc(limit=3)}" if tracebacks else ""
            print(f"{prog}: case {case} failed: {msg}{trace}", file=sys.stderr)
        finally:
            bar.update(1)
            out.write_summaries(errors, tried, previous)
    bar.close()
    all_errors = out.write_summaries(errors, tried, previous)
    write_batch_summary(outdir, list(out.rows), all_errors)  # regions.csv, index.html: every case folder
    return {"ok": ok, "skipped": skipped, "failed": len(errors), "errors": errors}


def _progress_bar(total, enabled):
    from tqdm import tqdm

    return tqdm(total=total, unit="case", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def _slice_progress(bar, case):
    def report(fraction, message):
        bar.set_postfix_str(f"{int(100 * fraction):3d}% {message}"[:60], refresh=True)
        return True
    return report
