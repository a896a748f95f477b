"""Speed and memory benchmark: prints numbers, asserts nothing.

    python bench/benchmark.py [--dicom ../shared/data/ct/ctanalyser-tcia-lung-pet-ct-dx-A0001/Chest_CT]

End to end (read -> segment -> measure -> write every output) on a 512x512x141 CT (a real 512x512x64
TCIA chest CT resampled to 141 slices), for the hu, ct2d and ct3d engines; one radiograph; and the peak
resident memory of a 512x512x600 CT through each network engine, each in a fresh process; and, warm, what the
regional measurements, report.png and the batch page add to the 512x512x141 case (time and peak memory;
``--extras-only`` runs just that). Shipped models are used when present, otherwise randomly initialised
weights of the same architecture (same cost).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DICOM = REPO.parent / "shared" / "data" / "ct" / "ctanalyser-tcia-lung-pet-ct-dx-A0001" / "Chest_CT"


def make_ct(dicom: Path, slices: int, out: Path) -> Path:
    import SimpleITK as sitk

    sys.path.insert(0, str(REPO))
    from LungSegLib.io import read_image

    img = read_image(dicom).to_sitk()
    size = list(img.GetSize())
    spacing = list(img.GetSpacing())
    spacing[2] = spacing[2] * (size[2] - 1) / (slices - 1)
    size[2] = slices
    res = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), spacing,
                        img.GetDirection(), -1024, sitk.sitkInt16)
    sitk.WriteImage(res, str(out))
    return out


def weights_for(task: str, tmp: Path) -> str:
    sys.path.insert(0, str(REPO))
    from LungSegLib.networks import build_network, default_card, shipped_cards

    if any(c["task"] == task for c in shipped_cards()):
        return ""
    import torch

    path = tmp / f"{task}_random.pt"
    torch.save(build_network(default_card(task, "unet")).state_dict(), path)
    return str(path)


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
t0 = time.perf_counter()
from LungSegLib.params import Parameters
from LungSegLib.pipeline import run_case
from LungSegLib.report import write_case
t_import = time.perf_counter() - t0
params = Parameters(engine={engine!r}, weights={weights!r}, threads={threads})
runs = []
for i in range({repeats}):
    t1 = time.perf_counter()
    result = run_case({path!r}, params)
    write_case(result, "bench", {out!r} + str(i) + "/bench")
    runs.append(time.perf_counter() - t1)
timings = json.load(open({out!r} + str(len(runs) - 1) + "/bench/measurements.json"))["timings_s"]
print(json.dumps({{"seconds": runs[-1], "cold_s": runs[0], "import_s": t_import, "timings": timings,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "volume_ml": result.measurements["structures"]["both"].get("volume_ml")}}))
"""


EXTRAS = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
from LungSegLib.figures import save_report_png
from LungSegLib.params import Parameters
from LungSegLib.pipeline import run_case
from LungSegLib.regions import measure_regions
from LungSegLib.report import write_case
from LungSegLib.summary import write_batch_summary

def status(key):  # kB -> MB, from /proc/self/status
    return next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith(key)) / 1024

result = run_case({path!r}, Parameters(engine="hu", threads={threads}))
report = write_case(result, "bench", {out!r} + "/bench")  # warm-up: imports, fonts
open("/proc/self/clear_refs", "w").write("5")  # reset the peak RSS (Linux >= 4.0)
rss = status("VmRSS")
steps = {{"regions": lambda: measure_regions(result.labels.array, result.image, 1.0, 10),
          "report.png": lambda: save_report_png(result, report, {out!r} + "/report.png"),
          "index.html + regions.csv": lambda: write_batch_summary({out!r}, ["bench"], [])}}
out = {{}}
for name, step in steps.items():
    t, c = time.perf_counter(), time.process_time()
    step()
    out[name] = [time.perf_counter() - t, time.process_time() - c]
print(json.dumps({{"steps": out, "peak_added_mb": status("VmHWM") - rss,
                  "lung_voxels": int(result.measurements["structures"]["both"]["voxel_count"])}}))
"""


def run_extras(path, threads, out) -> dict:
    """What regions, report.png and the batch summary add to a case, warm, with the peak memory they add."""
    code = EXTRAS.format(repo=str(REPO), path=str(path), threads=threads, out=str(out))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_child(path, engine, weights, threads, out, repeats=2) -> dict:
    """Run the case ``repeats`` times in one fresh process: the first run pays the lazy imports and
    model loading (cold), the last is what each further case of a batch costs (warm)."""
    code = CHILD.format(repo=str(REPO), engine=engine, weights=weights, threads=threads, path=str(path),
                        out=str(out), repeats=repeats)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dicom", type=Path, default=DEFAULT_DICOM)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-600", action="store_true", help="skip the 512x512x600 memory run")
    p.add_argument("--extras-only", action="store_true", help="only what regions, report.png and index.html add")
    p.add_argument("--engines", nargs="+", default=["hu", "ct2d", "ct3d", "ct2d+ct3d"],
                   help="CT engines timed on the 512x512x141 CT")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ct141 = make_ct(args.dicom, 141, tmp / "ct141.nii.gz")
        extras = run_extras(ct141, args.threads, tmp / "out_extras")
        rows = []
        for engine in () if args.extras_only else args.engines:
            weights = weights_for(engine, tmp) if engine in ("ct2d", "ct3d") else ""
            r = run_child(ct141, engine, weights, args.threads,
                          tmp / f"out_{engine}")
            rows.append((f"{engine} 512x512x141 end-to-end", r))
        cxr = REPO / "samples" / "montgomery_MCUCXR_0001_0.png"
        if not args.extras_only:
            rows.append(("cxr 256x256 radiograph end-to-end",
                         run_child(cxr, "cxr", weights_for("cxr", tmp), args.threads, tmp / "out_cxr")))
        if not (args.skip_600 or args.extras_only):
            ct600 = make_ct(args.dicom, 600, tmp / "ct600.nii.gz")
            for engine in [e for e in args.engines if e != "hu"]:
                weights = weights_for(engine, tmp) if engine in ("ct2d", "ct3d") else ""
                rows.append((f"{engine} 512x512x600 peak memory",
                             run_child(ct600, engine, weights, args.threads, tmp / "out600", 1)))
    print(f"cpu cores: {os.cpu_count()}, torch threads: {args.threads}")
    for name, r in rows:
        if "error" in r:
            print(f"{name:<40} ERROR {r['error']}")
        else:
            print(f"{name:<40} warm {r['seconds']:6.2f} s  cold {r['cold_s']:6.2f} s  peak RSS "
                  f"{r['peak_rss_mb']:6.0f} MB  (warm: read {r['timings'].get('read', 0):.2f} s, segment "
                  f"{r['timings'].get('segment', 0):.2f} s, measure {r['timings'].get('measure', 0):.2f} s "
                  f"(regions {r['timings'].get('regions', 0):.2f} s), report.png "
                  f"{r['timings'].get('report_png', 0):.2f} s; package import {r['import_s']:.2f} s)")
    if "error" in extras:
        print(f"{'regions + pictures + index (hu, 141)':<40} ERROR {extras['error']}")
    else:
        steps = extras["steps"]
        split = ", ".join(f"{k} {w:.2f} s (cpu {c:.2f})" for k, (w, c) in steps.items())
        wall, cpu = (sum(v[i] for v in steps.values()) for i in (0, 1))
        print(f"{'regions + pictures + index (hu, 141)':<40} added {wall:.2f} s (cpu {cpu:.2f}): {split}; peak "
              f"memory added {extras['peak_added_mb']:.0f} MB ({extras['lung_voxels']} lung voxels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
