"""Dense-lung stress test: make the dependent (posterior) 25 % of the lung volume dense (-100..+60 HU,
like edema / consolidation / atelectasis), segment with each engine and compare against the true mask.

Pass criteria (issue 3): Dice (both lungs) >= 0.95 and weight_g within 5 % of the weight computed with
the true mask on the same dense volume. The HU-threshold engine is expected to fail (it drops dense lung).

Example (from the repository root):
  python bench/dense_lung_stress.py --data ../shared/data/ct/lctsc-cambridge-dis-12 \\
      --split LungSegLib/models/ct_split.csv --subset val --engines ct2d ct3d hu --json stress.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LungSegLib.augment import make_dense_case  # noqa: E402
from LungSegLib.data import find_pairs, read_pair, read_split  # noqa: E402
from LungSegLib.errors import LungSegError  # noqa: E402

DICE_MIN, WEIGHT_TOL_PCT = 0.95, 5.0


def stress_case(image, labels, engines, fraction=0.25, seed=0, device="cpu", arch="unet", weights="") -> dict:
    """One canonical CT (:class:`Image`) with sided true labels -> per-engine Dice / weight results."""
    from LungSegLib.measure import measure_ct
    from LungSegLib.params import Parameters
    from LungSegLib.pipeline import segment_image

    lungs = labels.array > 0
    dense_hu, region = make_dense_case(image.array, lungs, fraction, seed)
    dense = image.with_array(dense_hu)
    true = measure_ct(labels.array, dense_hu, image.voxel_volume_ml)["structures"]["both"]
    out = {"dense_fraction": float(region.sum() / lungs.sum()), "true_weight_g": true["weight_g"],
           "true_volume_ml": true["volume_ml"], "engines": {}}
    for engine in engines:
        res = segment_image(dense, Parameters(engine=engine, arch=arch, device=device,
                                                 weights=weights if engine != "hu" else ""))
        pred = res.labels.array > 0
        dice = 2.0 * (pred & lungs).sum() / (pred.sum() + lungs.sum())
        w = res.measurements["structures"]["both"]["weight_g"]
        err = 100.0 * (w - true["weight_g"]) / true["weight_g"]
        out["engines"][engine] = {
            "dice": float(dice), "dense_region_recall": float((pred & region).sum() / max(1, region.sum())),
            "weight_g": w, "weight_error_pct": float(err),
            "passed": bool(dice >= DICE_MIN and abs(err) <= WEIGHT_TOL_PCT)}
    return out


def dense_lung_stress(pairs, engines=("ct2d", "ct3d", "hu"), fraction=0.25, seed=0, device="cpu", arch="unet",
                      weights="") -> dict:
    """Run :func:`stress_case` on ``[(case, image_path, mask_path), ...]``; per case + per engine summary."""
    cases = {}
    for k, (case, img, msk) in enumerate(pairs):
        image, labels = read_pair(img, msk, radiograph=False)
        cases[case] = stress_case(image, labels, engines, fraction, seed + k, device, arch, weights)
    summary = {}
    for e in engines:
        rows = [c["engines"][e] for c in cases.values()]
        summary[e] = {"dice_mean": float(np.mean([r["dice"] for r in rows])),
                      "dice_worst": float(np.min([r["dice"] for r in rows])),
                      "weight_error_pct_mean": float(np.mean([r["weight_error_pct"] for r in rows])),
                      "weight_error_pct_worst": float(max((r["weight_error_pct"] for r in rows), key=abs)),
                      "dense_region_recall_mean": float(np.mean([r["dense_region_recall"] for r in rows])),
                      "passed": all(r["passed"] for r in rows)}
    return {"fraction": fraction, "criteria": {"dice_min": DICE_MIN, "weight_tolerance_pct": WEIGHT_TOL_PCT},
            "summary": summary, "cases": cases}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", action="append", required=True, help="CT data folder (<case>_ct + <case>_lungs)")
    p.add_argument("--split", help="CSV case,split; evaluate only --subset")
    p.add_argument("--subset", default="val")
    p.add_argument("--engines", nargs="+", default=["ct2d", "ct3d", "hu"])
    p.add_argument("--arch", default="unet")
    p.add_argument("--weights", default="", help="weights file instead of the shipped model (one engine)")
    p.add_argument("--fraction", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="write the full result here")
    args = p.parse_args(argv)
    try:
        pairs = find_pairs(args.data)
        if args.split:
            split = read_split(args.split)
            pairs = [q for q in pairs if split.get(q[0]) == args.subset]
        if not pairs:
            raise LungSegError("no CT cases to test")
        result = dense_lung_stress(pairs, args.engines, args.fraction, args.seed, args.device, args.arch,
                                   args.weights)
    except LungSegError as e:
        print(f"dense_lung_stress: error: {e}", file=sys.stderr)
        return 2
    result["command"] = "python bench/dense_lung_stress.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for e, s in result["summary"].items():
        print(f"{e:5s} Dice {s['dice_mean']:.4f} (worst {s['dice_worst']:.4f})  weight error "
              f"{s['weight_error_pct_mean']:+.1f} % (worst {s['weight_error_pct_worst']:+.1f} %)  dense recall "
              f"{s['dense_region_recall_mean']:.3f}  {'PASS' if s['passed'] else 'FAIL'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
