"""Batch-level files rebuilt from the finished cases on disk at the end of every batch (so ``--resume`` brings
them up to date): OUTDIR/regions.csv (one row per case x structure x region) and OUTDIR/index.html."""

from __future__ import annotations

import json
from pathlib import Path

from .html_report import CASE_FILES, render_index
from .io import write_text
from .report import REGION_COLUMNS, region_rows, rows_to_csv


def finished_reports(outdir: Path, cases) -> dict:
    """case -> its measurements.json, for the ``cases`` that have one."""
    reports = {}
    for case in cases:
        done = Path(outdir) / case / "measurements.json"
        try:
            reports[case] = json.loads(done.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return reports


def write_batch_summary(outdir, cases, errors) -> None:
    """regions.csv (when any case is a CT) and index.html for ``cases`` (every finished case folder in OUTDIR,
    whichever run wrote it, like measurements.csv) and the ``errors`` rows (those of errors.csv). A case that
    failed in this run keeps its earlier folder on disk: regions.csv lists it (as measurements.csv does) and
    index.html shows the failure, with links to the files still there."""
    outdir = Path(outdir)
    cases = sorted(cases, key=str.lower)
    reports = finished_reports(outdir, cases)
    region_table = [row for case, report in reports.items() for row in region_rows(case, report)]
    if region_table:
        write_text(outdir / "regions.csv", rows_to_csv(region_table, REGION_COLUMNS))
    elif (outdir / "regions.csv").is_file():
        (outdir / "regions.csv").unlink()
    by_case = {e["case"]: e for e in errors}
    index_rows = []
    for case in sorted(set(cases) | set(by_case), key=str.lower):
        present = {name for name in CASE_FILES if (outdir / case / name).is_file()}
        error = by_case.get(case)
        index_rows.append((case, None if error else reports.get(case), present, error or
                           {"case": case, "error": "no result"}))
    write_text(outdir / "index.html", render_index(index_rows, f"LungSeg batch: {outdir.name}"))
