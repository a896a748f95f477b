"""Batch-level files rebuilt from the finished cases on disk at the end of every batch (so ``--resume`` brings
them up to date): OUTDIR/regions.csv (one row per case x structure x region) and OUTDIR/index.html."""

from __future__ import annotations

import json
from pathlib import Path

from .html_report import CASE_FILES, render_index
from .io import write_text
from .report import REGION_COLUMNS, region_rows, rows_to_csv


def finished_reports(outdir: Path, cases) -> dict:
    """case -> its measurements.json, for the cases of this batch that have one."""
    reports = {}
    for case in cases:
        done = Path(outdir) / case / "measurements.json"
        try:
            reports[case] = json.loads(done.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return reports


def write_batch_summary(outdir, cases, errors) -> None:
    """regions.csv (when any case is a CT) and index.html, for ``cases`` (names, in batch order) and the
    ``errors`` rows of the failed ones."""
    outdir = Path(outdir)
    failed = {e["case"] for e in errors}  # a failed rerun may leave an older result on disk: not this batch's
    reports = finished_reports(outdir, [c for c in cases if c not in failed])
    region_table = [row for case, report in reports.items() for row in region_rows(case, report)]
    if region_table:
        write_text(outdir / "regions.csv", rows_to_csv(region_table, REGION_COLUMNS))
    elif (outdir / "regions.csv").exists():
        (outdir / "regions.csv").unlink()
    by_case = {e["case"]: e for e in errors}
    index_rows = []
    for case in cases:
        present = {name for name in CASE_FILES if (outdir / case / name).is_file()}
        error = by_case.pop(case, {"case": case, "error": "no result"})
        index_rows.append((case, reports.get(case), present, error))
    index_rows += [(e["case"], None, set(), e) for e in by_case.values()]  # inputs that never became a case
    write_text(outdir / "index.html", render_index(index_rows, f"LungSeg batch: {outdir.name}"))
