"""OUTDIR/index.html: one self-contained page for a batch (no network, no external scripts or styles).

A row per case: thumbnail (the case's overlay.png, linking to its report.png), key numbers, QC flags
highlighted, links to the case's files; failed cases with their reason. Columns sort on a click (inline
script). Pictures are linked relatively, so the page works from the output folder, a copy of it, or a zip.
"""

from __future__ import annotations

import datetime
import html
from urllib.parse import quote

from . import __version__

CASE_FILES = {"report.png": "report", "overlay.png": "overlay", "measurements.json": "json",
              "lungs.nii.gz": "labels .nii.gz", "lungs.seg.nrrd": "Slicer .seg.nrrd", "lungs.seg.dcm": "DICOM SEG",
              "lungs.png": "labels .png"}
# header, report key path, number format; a column is numeric when it has a format
COLUMNS = (("case", None, None), ("modality", None, None), ("engine / model", None, None),
           ("lungs mL", ("structures", "both", "volume_ml"), "{:.0f}"),
           ("right mL", ("structures", "right", "volume_ml"), "{:.0f}"),
           ("left mL", ("structures", "left", "volume_ml"), "{:.0f}"),
           ("weight g", ("structures", "both", "weight_g"), "{:.0f}"),
           ("mean HU", ("structures", "both", "mean_hu"), "{:.0f}"),
           ("non-aerated %", ("structures", "both", "non_aerated_volume_fraction"), "{:.1%}"),
           ("area cm2", ("structures", "both", "area_cm2"), "{:.1f}"),
           ("right/left", None, "{:.2f}"), ("QC flags", None, None), ("files", None, None))

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.5em;margin:0 0 .2em}
p.meta{color:#555;margin:.2em 0 1em}
table{border-collapse:collapse;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 7px;vertical-align:middle}
th{background:#eef;cursor:pointer;position:sticky;top:0;white-space:nowrap}
th.sorted-asc::after{content:' \\25B2'} th.sorted-desc::after{content:' \\25BC'}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td{background:#fde8e8}
td.flags span{display:inline-block;background:#c62828;color:#fff;border-radius:3px;padding:1px 5px;margin:1px;
 font-size:12px}
td.ok{color:#2e7d32}
img.thumb{max-width:300px;max-height:110px;display:block}
td.files a{display:block;font-size:12px}
.error{color:#b71c1c;font-weight:600}
"""

SCRIPT = r"""
document.querySelectorAll('th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
    var asc = !th.classList.contains('sorted-asc');
    document.querySelectorAll('th').forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
    th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
    function key(row) { var c = row.cells[col]; return c ? c.getAttribute('data-sort') || c.textContent : ''; }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y), r;
      if (x === '' && y !== '') return 1;
      if (y === '' && x !== '') return -1;
      r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? r : -r;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
(function () {  // index.html#sort=N or #sort=N-desc opens the page sorted by column N (0 = picture)
  var m = /^#sort=(\d+)(-desc)?$/.exec(location.hash), th = m && document.querySelectorAll('th')[+m[1]];
  if (th) { th.click(); if (m[2]) th.click(); }
})();
"""


def _get(report, path):
    value = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _cell(value, fmt=None, css="") -> str:
    if value is None or value == "":
        return f'<td class="{css}" data-sort=""></td>'
    text = fmt.format(value) if fmt else str(value)
    sort = repr(float(value)) if fmt else str(value)
    return f'<td class="{css}" data-sort="{html.escape(sort)}">{html.escape(text)}</td>'


def _link(case, name, label=None) -> str:
    return f'<a href="{quote(case)}/{quote(name)}">{html.escape(label or name)}</a>'


def _case_row(case: str, report: dict, present: set) -> str:
    model = (report.get("model") or {}).get("name") or ""
    ratio = _get(report, ("qc", "right_left_volume_ratio")) or report.get("right_left_area_ratio")
    flags = _get(report, ("qc", "flags")) or []
    thumb = ""
    if "overlay.png" in present:
        img = f'<img class="thumb" src="{quote(case)}/overlay.png" alt="{html.escape(case)} overlay">'
        thumb = f'<a href="{quote(case)}/report.png">{img}</a>' if "report.png" in present else img
    cells = [f"<td>{thumb}</td>", _cell(case), _cell(report.get("modality")),
             _cell(f"{report.get('engine', '')} / {model}")]
    for _, path, fmt in COLUMNS[3:10]:
        cells.append(_cell(_get(report, path), fmt, "num"))
    cells.append(_cell(ratio, "{:.2f}", "num"))
    if flags:
        spans = "".join(f"<span>{html.escape(f)}</span>" for f in flags)
        cells.append(f'<td class="flags" data-sort="{len(flags)} {html.escape(";".join(flags))}">{spans}</td>')
    else:
        cells.append('<td class="ok" data-sort="0">none</td>')
    links = "".join(_link(case, name, label) for name, label in CASE_FILES.items() if name in present)
    cells.append(f'<td class="files">{links}</td>')
    return "<tr>" + "".join(cells) + "</tr>"


def _failed_row(error: dict, present: set = frozenset()) -> str:
    """A failed case; ``present``: files an earlier run left in its folder (linked, still valid)."""
    case = error.get("case", "")
    reason = f'<span class="error">failed:</span> {html.escape(str(error.get("error", "")))}'
    source = html.escape(str(error.get("input", "")))
    links = "".join(_link(case, name, label) for name, label in CASE_FILES.items() if name in present)
    return (f'<tr class="failed"><td></td>{_cell(case)}<td colspan="{len(COLUMNS) - 2}" data-sort="">{reason}'
            f'<br><small>{source}</small></td><td class="files" data-sort="failed">{links}</td></tr>')


def render_index(rows: list, title: str = "LungSeg batch") -> str:
    """``rows``: (case, report or None, set of file names present, error dict or None), in page order."""
    n_ok = sum(1 for _, report, _, _ in rows if report is not None)
    n_failed = len(rows) - n_ok
    flagged = sum(1 for _, report, _, _ in rows if report is not None and _get(report, ("qc", "flags")))
    header = "".join(f"<th>{html.escape(name)}</th>" for name in ["picture", *[c[0] for c in COLUMNS]])
    body = "\n".join(_case_row(case, report, present) if report is not None else _failed_row(error, present)
                     for case, report, present, error in rows)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">{len(rows)} cases: {n_ok} done, {n_failed} failed, {flagged} with QC flags. LungSeg {__version__},
{stamp}. Lungs mL: voxel count x voxel volume; weight g: two-compartment gas/tissue model (see each case's
measurements.json); per-region values in regions.csv. Click a column header to sort; click a picture for the
case's report.</p>
<table>
<thead><tr>{header}</tr></thead>
<tbody>
{body}
</tbody></table>
<script>{SCRIPT}</script>
</body></html>
"""
