"""Radiograph opacity stress test: paint each synthetic opacity family (``LungSegLib.opacity``) inside the
reference lung of held-out test films, segment with the real pipeline and report, per family, Dice
(both lungs) against the reference and opacity recall (share of the painted opacity, field > 0.5, that
stays inside the predicted lung). Families in ``opacity.HELD_OUT`` were never used in training: their
rows show how the model generalises to an opacity shape it never saw.

Example (from the repository root; --weights compares a new model against the shipped one):
  python bench/cxr_opacity_stress.py --data ../shared/data/cxr/montgomery --data ../shared/data/cxr/shenzhen \\
      --split LungSegLib/models/cxr_split.csv --subset test --arch resunet --json opacity.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LungSegLib.data import find_pairs, read_pair, read_split  # noqa: E402
from LungSegLib.errors import LungSegError  # noqa: E402
from LungSegLib.opacity import FAMILIES, HELD_OUT, opacity_field, paint_opacity  # noqa: E402


def stress_film(image, labels, params, families=FAMILIES, seed=0) -> dict:
    """One radiograph (:class:`Image`, sided reference labels) -> {family: {dice, opacity_recall}}."""
    from LungSegLib.pipeline import segment_image

    lungs = labels.array > 0
    arr = image.array.astype(np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    unit = (arr - lo) / max(hi - lo, 1e-6)
    out = {}
    for k, family in enumerate(("clean",) + tuple(families)):
        rng = np.random.default_rng(seed * 100 + k)
        if family == "clean":
            painted, opaque = unit, None
        else:
            field = opacity_field(family, lungs, rng)
            painted, opaque = paint_opacity(unit, field, rng), field > 0.5
        res = segment_image(image.with_array(painted * (hi - lo) + lo), params)
        pred = res.labels.array > 0
        row = {"dice": float(2.0 * (pred & lungs).sum() / max(1, pred.sum() + lungs.sum()))}
        if opaque is not None and opaque.any():
            row["opacity_recall"] = float(pred[opaque].mean())
        out[family] = row
    return out


def opacity_stress(pairs, params, families=FAMILIES) -> dict:
    films = {}
    for k, (case, img, msk) in enumerate(pairs):
        image, labels = read_pair(img, msk, radiograph=True)
        films[case] = stress_film(image, labels, params, families, k)
    summary = {}
    for family in ("clean",) + tuple(families):
        rows = [f[family] for f in films.values()]
        s = {"dice_mean": float(np.mean([r["dice"] for r in rows])),
             "dice_worst": float(np.min([r["dice"] for r in rows])), "held_out": family in HELD_OUT}
        rec = [r["opacity_recall"] for r in rows if "opacity_recall" in r]
        if rec:
            s.update(opacity_recall_mean=float(np.mean(rec)), opacity_recall_worst=float(np.min(rec)))
        summary[family] = s
    return {"summary": summary, "films": films}


def main(argv=None) -> int:
    from LungSegLib.params import Parameters

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", action="append", required=True, help="radiograph folder (images/ + masks/)")
    p.add_argument("--split", help="CSV case,split; use only --subset")
    p.add_argument("--subset", default="test")
    p.add_argument("--arch", default="resunet")
    p.add_argument("--weights", default="", help="weights file instead of the shipped model")
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    p.add_argument("--max-films", type=int, default=0, help="use only the first N films")
    p.add_argument("--json", help="write the full result here")
    args = p.parse_args(argv)
    try:
        pairs = find_pairs(args.data)
        if args.split:
            split = read_split(args.split)
            pairs = [q for q in pairs if split.get(q[0]) == args.subset]
        pairs = pairs[: args.max_films] if args.max_films else pairs
        if not pairs:
            raise LungSegError("no radiographs to test")
        params = Parameters(engine="cxr", arch=args.arch, device="cpu", weights=args.weights)
        result = opacity_stress(pairs, params, args.families)
    except LungSegError as e:
        print(f"cxr_opacity_stress: error: {e}", file=sys.stderr)
        return 2
    result["command"] = "python bench/cxr_opacity_stress.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for family, s in result["summary"].items():
        rec = f"  opacity recall {s['opacity_recall_mean']:.3f} (worst {s['opacity_recall_worst']:.3f})" \
            if "opacity_recall_mean" in s else ""
        print(f"{family:7s}{' (held out)' if s['held_out'] else '           '} Dice {s['dice_mean']:.4f} "
              f"(worst {s['dice_worst']:.4f}){rec}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
