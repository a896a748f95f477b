"""Speed and memory benchmark: prints numbers, asserts nothing.

    python bench/benchmark.py [--dicom ../shared/data/ct/ctanalyser-tcia-lung-pet-ct-dx-A0001/Chest_CT]

End to end (read -> segment -> measure -> write every output) on a 512x512x141 CT (a real 512x512x64
TCIA chest CT resampled to 141 slices), for the hu, ct2d and ct3d engines; one radiograph; and the peak
resident memory of a 512x512x600 CT through ct2d and ct3d, each in a fresh process. Shipped models are used when
present, otherwise randomly initialised weights of the same architecture (same cost).
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
    write_case(result, "bench", {out!r} + str(i))
    runs.append(time.perf_counter() - t1)
print(json.dumps({{"seconds": runs[-1], "cold_s": runs[0], "import_s": t_import, "timings": result.timings,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "volume_ml": result.measurements["structures"]["both"].get("volume_ml")}}))
"""


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
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ct141 = make_ct(args.dicom, 141, tmp / "ct141.nii.gz")
        rows = []
        for engine in ("hu", "ct2d", "ct3d"):
            r = run_child(ct141, engine, weights_for(engine, tmp) if engine != "hu" else "", args.threads,
                          tmp / f"out_{engine}")
            rows.append((f"{engine} 512x512x141 end-to-end", r))
        cxr = REPO / "samples" / "montgomery_MCUCXR_0001_0.png"
        rows.append(("cxr 256x256 radiograph end-to-end",
                     run_child(cxr, "cxr", weights_for("cxr", tmp), args.threads, tmp / "out_cxr")))
        if not args.skip_600:
            ct600 = make_ct(args.dicom, 600, tmp / "ct600.nii.gz")
            for engine in ("ct2d", "ct3d"):
                rows.append((f"{engine} 512x512x600 peak memory",
                             run_child(ct600, engine, weights_for(engine, tmp), args.threads, tmp / "out600", 1)))
    print(f"cpu cores: {os.cpu_count()}, torch threads: {args.threads}")
    for name, r in rows:
        if "error" in r:
            print(f"{name:<40} ERROR {r['error']}")
        else:
            print(f"{name:<40} warm {r['seconds']:6.2f} s  cold {r['cold_s']:6.2f} s  peak RSS "
                  f"{r['peak_rss_mb']:6.0f} MB  (warm: read {r['timings'].get('read', 0):.2f} s, segment "
                  f"{r['timings'].get('segment', 0):.2f} s; package import {r['import_s']:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
