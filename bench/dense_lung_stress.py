"""Dense-lung robustness report: every engine x pathology family x dense fraction on held-out patients.

Each validation CT is read once; each simulated pathology (``LungSegLib.pathology``: 8 families, the
held-out ones never seen in training) is painted once per dense fraction inside the true lung mask (label
kept as lung) and every engine segments that same volume through the product pipeline
(``pipeline.segment_image``). Per engine, family and fraction, against the true mask:
  - Dice (both lungs merged),
  - dense-region recall: fraction of the painted voxels inside the predicted lung,
  - weight error %: weight_g of the predicted mask vs weight_g of the true mask on the same painted volume
    (``measure.measure_ct``, Gattinoni gas/tissue model, density 1.0 g/mL),
plus a clean row (no pathology). Targets (issue 9): Dice >= 0.95 and |weight error| <= 5 % at 25 % dense.
Seeds are fixed per case position, family and fraction (``--seed``), so reruns on the same data and split
paint the same patterns.

Example (from the repository root, about 10 min per engine on 2 CPU cores):
  OMP_NUM_THREADS=1 python bench/dense_lung_stress.py --data ../shared/data/ct/lctsc-cambridge-dis-12 \\
      --split LungSegLib/models/ct_split.csv --subset val --engines ct2d ct3d ct2d+ct3d hu \\
      --json bench/results/robustness.json --png bench/results/robustness.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LungSegLib.data import find_pairs, read_pair, read_split  # noqa: E402
from LungSegLib.errors import LungSegError  # noqa: E402
from LungSegLib.pathology import FAMILIES, HELD_OUT, simulate  # noqa: E402

DICE_MIN, WEIGHT_TOL_PCT, TARGET_FRACTION = 0.95, 5.0, 0.25
FRACTIONS = (0.10, 0.25, 0.40)


def score_engines(image, lungs, region, engines, params) -> dict:
    """Segment ``image`` with each engine; Dice, dense-region recall and weight error vs the true mask."""
    from LungSegLib.measure import measure_ct
    from LungSegLib.pipeline import segment_image

    true_weight = measure_ct(lungs.astype(np.uint8), image.array, image.voxel_volume_ml)["structures"]["both"]
    out = {}
    for engine in engines:
        t0 = time.perf_counter()
        res = segment_image(image, params(engine))
        pred = res.labels.array > 0
        weight = res.measurements["structures"]["both"]["weight_g"]
        out[engine] = {
            "dice": float(2.0 * (pred & lungs).sum() / (pred.sum() + lungs.sum())),
            "dense_region_recall": float((pred & region).sum() / region.sum()) if region.any() else None,
            "weight_g": weight, "true_weight_g": true_weight["weight_g"],
            "weight_error_pct": float(100.0 * (weight - true_weight["weight_g"]) / true_weight["weight_g"]),
            "seconds": round(time.perf_counter() - t0, 2)}
    return out


def case_seed(seed: int, case_index: int, family: str, fraction: float) -> int:
    """A fixed seed per (case, family, fraction), independent of which families/fractions are run."""
    return int(seed * 1_000_003 + case_index * 10_007 + FAMILIES.index(family) * 101 + round(fraction * 100))


def robustness_case(image, labels, engines, families, fractions, params, seed=0, case_index=0, log=None):
    """One canonical CT with its true (sided) labels -> clean and painted per-engine rows."""
    lungs = labels.array > 0
    spacing = tuple(float(s) for s in image.spacing[::-1])  # (z, y, x) mm on the canonical grid
    rows = {"clean": score_engines(image, lungs, np.zeros_like(lungs), engines, params), "painted": {}}
    for family in families:
        rows["painted"][family] = {}
        for fraction in fractions:
            rng = np.random.default_rng(case_seed(seed, case_index, family, fraction))
            hu, region = simulate(family, image.array, labels.array, fraction, rng, spacing)
            if np.issubdtype(image.array.dtype, np.integer):
                info = np.iinfo(image.array.dtype)
                hu = np.clip(np.rint(hu), info.min, info.max).astype(image.array.dtype)
            painted = image.with_array(hu)
            rows["painted"][family][f"{fraction:.2f}"] = {
                "dense_fraction": float(region.sum() / lungs.sum()),
                "engines": score_engines(painted, lungs, region, engines, params)}
            if log:
                log(f"  {family:12s} {fraction:.2f}: " + "  ".join(
                    f"{e} Dice {r['dice']:.3f} recall {r['dense_region_recall']:.2f} weight "
                    f"{r['weight_error_pct']:+.1f} %" for e, r in rows["painted"][family][f"{fraction:.2f}"]
                    ["engines"].items()))
    return rows


def _summary(rows: list) -> dict:
    dice = [r["dice"] for r in rows]
    err = [r["weight_error_pct"] for r in rows]
    recall = [r["dense_region_recall"] for r in rows if r["dense_region_recall"] is not None]
    return {"dice_mean": float(np.mean(dice)), "dice_worst": float(np.min(dice)),
            "weight_error_pct_mean": float(np.mean(err)), "weight_error_pct_worst": float(max(err, key=abs)),
            "dense_region_recall_mean": float(np.mean(recall)) if recall else None,
            "passed": bool(min(dice) >= DICE_MIN and max(abs(e) for e in err) <= WEIGHT_TOL_PCT)}


def summarise(cases: dict, engines, families, fractions) -> dict:
    """Per engine: clean summary and per family/fraction summaries (mean and worst over patients)."""
    out = {}
    for e in engines:
        out[e] = {"clean": _summary([c["clean"][e] for c in cases.values()]), "families": {}}
        for f in families:
            out[e]["families"][f] = {"held_out": f in HELD_OUT, "fractions": {
                key: _summary([c["painted"][f][key]["engines"][e] for c in cases.values()])
                for key in (f"{x:.2f}" for x in fractions)}}
    return out


def robustness(pairs, engines, families=FAMILIES, fractions=FRACTIONS, seed=0, device="cpu", arch="unet",
               weights="", log=print) -> dict:
    """Run :func:`robustness_case` on ``[(case, image_path, mask_path), ...]`` and summarise."""
    from LungSegLib.params import Parameters

    def params(engine):
        return Parameters(engine=engine, arch=arch, device=device, weights=weights if engine != "hu" else "")

    t0 = time.perf_counter()
    cases = {}
    for k, (case, img, msk) in enumerate(pairs):
        if log:
            log(f"{case}:")
        image, labels = read_pair(img, msk, radiograph=False)
        cases[case] = robustness_case(image, labels, engines, families, fractions, params, seed, k, log)
    return {"families": list(families), "held_out": [f for f in families if f in HELD_OUT],
            "fractions": [float(x) for x in fractions], "engines": list(engines), "seed": seed,
            "criteria": {"dice_min": DICE_MIN, "weight_tolerance_pct": WEIGHT_TOL_PCT,
                         "at_dense_fraction": TARGET_FRACTION},
            "method": {"dice": "both lungs merged, predicted vs true mask",
                       "dense_region_recall": "painted voxels inside the predicted lung / painted voxels",
                       "weight_error_pct": "100 x (weight_g predicted mask - weight_g true mask) / weight_g true "
                                           "mask, both on the same painted volume (measure.measure_ct)"},
            "summary": summarise(cases, engines, families, fractions), "cases": cases,
            "seconds": round(time.perf_counter() - t0, 1)}


def card_summary(result: dict, engine: str) -> dict:
    """The ``metrics.robustness`` block of a model card for one engine: every family at the target fraction,
    its worst family (what ``auto`` ranks by, :func:`LungSegLib.networks.robustness_dice`) and the clean row."""
    key = f"{TARGET_FRACTION:.2f}"
    s = result["summary"][engine]
    at = {f: {"dice": round(v["fractions"][key]["dice_mean"], 4),
              "recall": round(v["fractions"][key]["dense_region_recall_mean"], 3),
              "weight_error_pct": round(v["fractions"][key]["weight_error_pct_mean"], 1),
              "held_out": v["held_out"]} for f, v in s["families"].items() if key in v["fractions"]}
    if not at:
        raise LungSegError(f"no {key} dense fraction in the result; a card needs the target fraction")
    worst = min(at, key=lambda f: at[f]["dice"])
    heaviest = max(at, key=lambda f: abs(at[f]["weight_error_pct"]))
    return {"dice_worst_family_25": at[worst]["dice"], "worst_family_25": worst,
            "weight_error_pct_worst_family_25": at[heaviest]["weight_error_pct"], "weight_worst_family_25": heaviest,
            "at_25": at, "clean": {"dice": round(s["clean"]["dice_mean"], 4),
                                   "weight_error_pct": round(s["clean"]["weight_error_pct_mean"], 1)},
            "cases": list(result["cases"]), "command": result.get("command", "")}


def plot(result: dict, path) -> None:
    """Per engine: Dice and weight error vs dense fraction, one line per family (held out dashed); the
    clean value is drawn at fraction 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines, families = result["engines"], result["families"]
    colours = dict(zip(FAMILIES, plt.get_cmap("tab10").colors))
    fig, axes = plt.subplots(2, len(engines), figsize=(max(4.2 * len(engines), 6.0), 7.4), squeeze=False)
    for j, e in enumerate(engines):
        s = result["summary"][e]
        for f in families:
            xs = [0.0] + result["fractions"]
            rows = [s["clean"]] + [s["families"][f]["fractions"][f"{x:.2f}"] for x in result["fractions"]]
            style = dict(color=colours[f], ls="--" if f in HELD_OUT else "-", marker="o", ms=3,
                         label=f + (" (held out)" if f in HELD_OUT else ""))
            axes[0, j].plot(xs, [r["dice_mean"] for r in rows], **style)
            axes[1, j].plot(xs, [r["weight_error_pct_mean"] for r in rows], **style)
        axes[0, j].axhline(DICE_MIN, color="grey", lw=0.8)
        axes[1, j].axhspan(-WEIGHT_TOL_PCT, WEIGHT_TOL_PCT, color="grey", alpha=0.15)
        axes[0, j].set(title=e, ylabel="Dice (both lungs)", ylim=(min(0.9, axes[0, j].get_ylim()[0]), 1.0))
        axes[1, j].set(xlabel="dense fraction of the lung", ylabel="weight error (%)")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"dense-lung robustness, {len(result['cases'])} validation patients (mean)\n"
                 "grey: target Dice >= 0.95, |weight error| <= 5 %", fontsize=9)
    fig.tight_layout()
    _atomic(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)


def _atomic(path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", action="append", required=True, help="CT data folder (<case>_ct + <case>_lungs)")
    p.add_argument("--split", help="CSV case,split; evaluate only --subset")
    p.add_argument("--subset", default="val")
    p.add_argument("--engines", nargs="+", default=["ct2d", "ct3d", "ct2d+ct3d", "hu"],
                   help="engines to score (default: every CT engine; ct2d+ct3d is auto's choice up to 1.5 mm pixels)")
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES, metavar="FAMILY",
                   help=f"pathology families (default all: {' '.join(FAMILIES)})")
    p.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS), help="dense fractions")
    p.add_argument("--arch", default="unet")
    p.add_argument("--weights", default="", help="weights file instead of the shipped model (one engine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="write the full result here")
    p.add_argument("--png", help="write the plot here")
    p.add_argument("--card-summary", help="write each engine's model-card robustness block (JSON) here")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        if any(not 0.0 < f < 1.0 for f in args.fractions):
            raise LungSegError(f"--fractions {args.fractions}: each must be between 0 and 1")
        pairs = find_pairs(args.data)
        if args.split:
            split = read_split(args.split)
            pairs = [q for q in pairs if split.get(q[0]) == args.subset]
        if not pairs:
            raise LungSegError("no CT cases to test")
        result = robustness(pairs, args.engines, args.families, args.fractions, args.seed, args.device,
                            args.arch, args.weights, log=None if args.quiet else print)
    except LungSegError as e:
        print(f"dense_lung_stress: error: {e}", file=sys.stderr)
        return 2
    result["command"] = "python bench/dense_lung_stress.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for e, s in result["summary"].items():
        c = s["clean"]
        print(f"{e}: clean Dice {c['dice_mean']:.4f}, weight {c['weight_error_pct_mean']:+.1f} %")
        for f, fs in s["families"].items():
            print(f"  {f:12s}{'*' if fs['held_out'] else ' '} " + "  ".join(
                f"{k}: Dice {r['dice_mean']:.3f} recall {r['dense_region_recall_mean']:.2f} weight "
                f"{r['weight_error_pct_mean']:+5.1f} %" for k, r in fs["fractions"].items()))
    print("* held out of training")
    if args.json:
        _atomic(args.json, lambda tmp: tmp.write_text(json.dumps(result, indent=2) + "\n"))
    if args.png:
        plot(result, args.png)
    if args.card_summary:
        blocks = {e: card_summary(result, e) for e in result["engines"]}
        _atomic(args.card_summary, lambda tmp: tmp.write_text(json.dumps(blocks, indent=2) + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
